#include "services/decode/batch_engine.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kvq::decode {

Sequence::Sequence(std::unique_ptr<model::KvCache> cache,
                   KvBudget::Reservation reservation, int first_token,
                   SequenceParams params)
    : cache_(std::move(cache)),
      reservation_(std::move(reservation)),
      next_input_(first_token),
      params_(std::move(params)) {}

void Sequence::Next(Chunk* chunk, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
               [&] { return !pending_.empty() || (finished_ && !reported_); });
  chunk->tokens.swap(pending_);
  pending_.clear();
  if (finished_ && !reported_) {
    reported_ = true;
    chunk->finished = true;
    chunk->finish_reason = reason_;
    chunk->error = error_;
  }
}

model::KvCacheStats Sequence::final_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Sequence::Emit(int token) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(token);
  cv_.notify_all();
}

void Sequence::Finish(const std::string& reason, absl::Status error) {
  model::KvCacheStats stats;
  if (cache_) stats = cache_->Stats();
  // Free the memory now: the cache and the budget reservation.
  cache_.reset();
  reservation_.Release();
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  reason_ = reason;
  error_ = std::move(error);
  stats_ = stats;
  cv_.notify_all();
}

BatchEngine::BatchEngine(const model::Transformer& transformer, int max_batch,
                         absl::Duration step_delay)
    : transformer_(transformer),
      max_batch_(std::max(1, max_batch)),
      step_delay_(step_delay) {
  loop_ = std::thread([this] { Loop(); });
}

BatchEngine::~BatchEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  loop_.join();
}

void BatchEngine::Add(std::shared_ptr<Sequence> sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  incoming_.push_back(std::move(sequence));
  cv_.notify_all();
}

BatchEngine::Stats BatchEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void BatchEngine::Loop() {
  std::vector<std::shared_ptr<Sequence>> live;
  size_t rotate = 0;
  std::vector<float> logits;
  const int vocab = transformer_.model().config.vocab_size;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return stop_ || !incoming_.empty() || !live.empty(); });
      if (stop_) break;
      for (auto& s : incoming_) live.push_back(std::move(s));
      incoming_.clear();
    }
    // Drop cancelled sequences first: their memory goes back at once.
    for (auto& s : live) {
      if (s->cancelled()) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.cancelled;  // counted before the client can see the end
        }
        s->Finish("cancelled");
        s.reset();
      }
    }
    live.erase(std::remove(live.begin(), live.end(), nullptr), live.end());
    if (live.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.running = 0;
      continue;
    }
    // This step's batch: up to max_batch_, rotating when there are more.
    std::vector<Sequence*> batch;
    const size_t n = live.size();
    for (size_t k = 0; k < n && static_cast<int>(batch.size()) < max_batch_; ++k) {
      batch.push_back(live[(rotate + k) % n].get());
    }
    rotate = n > static_cast<size_t>(max_batch_) ? (rotate + batch.size()) % n : 0;
    std::vector<int> tokens;
    std::vector<model::KvCache*> caches;
    for (Sequence* s : batch) {
      tokens.push_back(s->next_input_);
      caches.push_back(s->cache_.get());
    }
    const absl::Status step = transformer_.DecodeStep(tokens, caches, &logits);
    if (step_delay_ > absl::ZeroDuration()) absl::SleepFor(step_delay_);
    uint64_t produced = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      Sequence* s = batch[i];
      if (!step.ok()) {
        s->Finish("error", absl::InternalError(
                               absl::StrCat("decode step failed: ", step.message())));
        continue;
      }
      const int token =
          model::SampleToken(absl::MakeConstSpan(logits.data() + i * vocab, vocab),
                             s->params_.sampling, static_cast<uint64_t>(s->emitted_));
      const auto& stops = s->params_.stop_ids;
      if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
        s->Finish("stop");
        continue;
      }
      s->Emit(token);
      ++produced;
      ++s->emitted_;
      s->next_input_ = token;
      if (s->emitted_ >= s->params_.max_tokens) s->Finish("length");
    }
    for (auto& s : live) {
      if (s->cache_ == nullptr) s.reset();  // finished this step
    }
    live.erase(std::remove(live.begin(), live.end(), nullptr), live.end());
    std::lock_guard<std::mutex> lock(mu_);
    stats_.steps += 1;
    stats_.tokens += produced;
    stats_.running = static_cast<uint32_t>(live.size());
  }
  for (auto& s : live) s->Finish("cancelled");
}

}  // namespace kvq::decode
