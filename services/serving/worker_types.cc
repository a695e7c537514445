#include "services/serving/worker_types.h"

#include "absl/strings/str_format.h"

namespace kvq::serving {

std::vector<int> StopIds(const GenerationParams& params, int bos_id, int eos_id) {
  std::vector<int> ids = params.stop_ids;
  if (!params.ignore_eos) {
    ids.push_back(bos_id);
    ids.push_back(eos_id);
  }
  return ids;
}

std::string ModelIdHex(uint64_t model_id) { return absl::StrFormat("%016x", model_id); }

}  // namespace kvq::serving
