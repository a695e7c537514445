#include "services/common/common_proto.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kvq::services {

absl::StatusOr<kernels::BlockEncoding> EncodingFromProto(const v1::BlockEncoding& proto,
                                                         absl::string_view field) {
  constexpr uint32_t kMax = std::numeric_limits<uint16_t>::max();
  const struct {
    const char* name;
    uint32_t value;
  } fields[] = {{"version", proto.version()},
                {"block_tokens", proto.block_tokens()},
                {"bits", proto.bits()},
                {"group", proto.group()},
                {"v_bits", proto.v_bits()},
                {"k_outliers", proto.k_outliers()},
                {"v_outliers", proto.v_outliers()},
                {"scales", proto.scales()},
                {"edge_layers", proto.edge_layers()},
                {"edge_bits", proto.edge_bits()}};
  for (const auto& f : fields) {
    if (f.value > kMax) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".", f.name, " = ", f.value, " is out of range"));
    }
  }
  return kernels::BlockEncoding{static_cast<uint16_t>(proto.version()),
                                static_cast<uint16_t>(proto.block_tokens()),
                                static_cast<uint16_t>(proto.bits()),
                                static_cast<uint16_t>(proto.group()),
                                static_cast<uint16_t>(proto.v_bits()),
                                static_cast<uint16_t>(proto.k_outliers()),
                                static_cast<uint16_t>(proto.v_outliers()),
                                static_cast<uint16_t>(proto.scales()),
                                static_cast<uint16_t>(proto.edge_layers()),
                                static_cast<uint16_t>(proto.edge_bits())};
}

void EncodingToProto(const kernels::BlockEncoding& encoding, v1::BlockEncoding* out) {
  out->set_version(encoding.version);
  out->set_block_tokens(encoding.block_tokens);
  out->set_bits(encoding.bits);
  out->set_group(encoding.group);
  out->set_v_bits(encoding.v_bits);
  out->set_k_outliers(encoding.k_outliers);
  out->set_v_outliers(encoding.v_outliers);
  out->set_scales(encoding.scales);
  out->set_edge_layers(encoding.edge_layers);
  out->set_edge_bits(encoding.edge_bits);
}

}  // namespace kvq::services
