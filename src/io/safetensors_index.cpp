// ShardedSafetensors: model.safetensors.index.json and its shards (see safetensors.h).
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "io/mapped_file.h"
#include "io/safetensors.h"

namespace glassbox {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxIndexJsonDepth = 16;


constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";
// Index files list one line per tensor; even the largest public checkpoints stay under 10 MB.
constexpr uint64_t kMaxIndexBytes = 64'000'000;

// Streams model.safetensors.index.json: keeps "weight_map" (tensor -> shard file name), skips
// everything else ("metadata" and any other key), rejects duplicate keys and deep nesting.
class IndexHandler : public nlohmann::json_sax<Json> {
 public:
  IndexHandler(const std::string& source, std::vector<std::pair<std::string, std::string>>& map)
      : source_(source), map_(map) {}
  bool seen_weight_map() const { return seen_weight_map_; }

  bool null() override { return value("null", nullptr); }
  bool boolean(bool) override { return value("a boolean", nullptr); }
  bool number_integer(number_integer_t) override { return value("a number", nullptr); }
  bool number_unsigned(number_unsigned_t) override { return value("a number", nullptr); }
  bool number_float(number_float_t, const string_t&) override { return value("a number", nullptr); }
  bool string(string_t& v) override { return value("a string", &v); }
  bool binary(binary_t&) override { return value("binary", nullptr); }
  bool start_object(std::size_t) override {
    if (top() == Ctx::kNone) return push(Ctx::kRoot);
    if (top() == Ctx::kRoot && key_ == "weight_map") {
      seen_weight_map_ = true;
      return push(Ctx::kWeightMap);
    }
    if (top() == Ctx::kWeightMap) value("an object", nullptr);
    return push(Ctx::kSkip);
  }
  bool start_array(std::size_t) override {
    if (top() == Ctx::kNone || top() == Ctx::kWeightMap ||
        (top() == Ctx::kRoot && key_ == "weight_map")) {
      value("an array", nullptr);
    }
    return push(Ctx::kSkip);
  }
  bool end_object() override { return pop(); }
  bool end_array() override { return pop(); }
  bool key(string_t& k) override {
    if (top() == Ctx::kRoot && !root_keys_.insert(k).second) fail("duplicate key " + in_quotes(k));
    if (top() == Ctx::kWeightMap && !names_.insert(k).second) {
      fail("weight_map lists tensor " + in_quotes(k) + " twice");
    }
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    const size_t close = what.find("] ");
    if (close != std::string::npos) what = what.substr(close + 2);
    fail("not valid JSON (byte " + std::to_string(position) + "): " + what);
  }

 private:
  enum class Ctx { kNone, kRoot, kWeightMap, kSkip };

  Ctx top() const { return stack_.empty() ? Ctx::kNone : stack_.back(); }
  bool push(Ctx c) {
    if (stack_.size() == kMaxIndexJsonDepth) {
      fail("JSON nested deeper than " + std::to_string(kMaxIndexJsonDepth) + " levels");
    }
    stack_.push_back(c);
    return true;
  }
  bool pop() {
    stack_.pop_back();
    return true;
  }
  bool value(const char* kind, std::string* s) {
    if (top() == Ctx::kNone) fail(std::string("the index is ") + kind + ", not a JSON object");
    if (top() == Ctx::kRoot && key_ == "weight_map") {
      fail(std::string("weight_map is ") + kind + ", not an object");
    }
    if (top() == Ctx::kWeightMap) {
      if (s == nullptr) fail("weight_map " + in_quotes(key_) + " is " + kind + ", not a file name");
      map_.emplace_back(key_, std::move(*s));
    }
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kFormat, source_ + ": " + what);
  }

  const std::string& source_;
  std::vector<std::pair<std::string, std::string>>& map_;
  std::vector<Ctx> stack_;
  std::string key_;
  std::set<std::string> root_keys_;
  std::set<std::string> names_;
  bool seen_weight_map_ = false;
};

}  // namespace

ShardedSafetensors ShardedSafetensors::open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  ShardedSafetensors s;
  std::string index_path;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (fs::exists(dir / kSingleFileName, ec)) {
      s.path_ = (dir / kSingleFileName).string();
    } else if (fs::exists(dir / kIndexFileName, ec)) {
      index_path = (dir / kIndexFileName).string();
    } else {
      throw Error(ErrorCode::kNotFound,
                  path + ": holds neither " + kSingleFileName + " nor " + kIndexFileName);
    }
  } else if (path.ends_with(".index.json")) {
    index_path = path;
  } else {
    s.path_ = path;
  }
  if (index_path.empty()) {
    s.shards_.push_back(SafetensorsFile::open(s.path_));
    for (const SafetensorsTensorInfo& t : s.shards_[0].tensor_infos()) s.index_.emplace(t.name, 0);
    return s;
  }

  s.path_ = index_path;
  s.sharded_ = true;
  const std::shared_ptr<MappedFile> file = MappedFile::open(index_path);
  if (file->size() > kMaxIndexBytes) {
    throw Error(ErrorCode::kFormat, index_path + ": index of " + std::to_string(file->size()) +
                                        " bytes exceeds the limit of " +
                                        std::to_string(kMaxIndexBytes));
  }
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard, file order
  IndexHandler handler(index_path, weight_map);
  const auto* text = reinterpret_cast<const char*>(file->data());
  // As for headers: nlohmann reads a NUL byte as the end of input, and NULs are never valid JSON.
  if (const void* nul = std::memchr(text, 0, file->size())) {
    throw Error(ErrorCode::kFormat, index_path + ": byte " +
                                        std::to_string(static_cast<const char*>(nul) - text) +
                                        " is NUL, which JSON does not allow");
  }
  if (!Json::sax_parse(text, text + file->size(), &handler) || !handler.seen_weight_map()) {
    throw Error(ErrorCode::kFormat, index_path + ": no \"weight_map\" object");
  }

  // Open each shard once, in order of first mention.
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, size_t> shard_ids;
  for (const auto& [tensor, shard] : weight_map) {
    if (shard_ids.count(shard)) continue;
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) {
      throw Error(ErrorCode::kFormat, index_path + ": weight_map " + in_quotes(tensor) +
                                          ": shard " + in_quotes(shard) +
                                          " is not a file name in the index's directory");
    }
    try {
      s.shards_.push_back(SafetensorsFile::open((dir / shard).string()));
    } catch (const Error& e) {
      throw e.with_context(index_path + ": shard " + in_quotes(shard) + " (holding " +
                           in_quotes(tensor) + ")");
    }
    shard_ids.emplace(shard, s.shards_.size() - 1);
  }
  for (const auto& [tensor, shard] : weight_map) {
    const size_t id = shard_ids.at(shard);
    if (s.shards_[id].find(tensor) == nullptr) {
      throw Error(ErrorCode::kFormat, index_path + ": tensor " + in_quotes(tensor) +
                                          " is mapped to shard " + in_quotes(shard) +
                                          ", which does not contain it");
    }
    s.index_.emplace(tensor, id);
  }
  // The other direction: every tensor a shard holds must be the one the index points at.
  for (const auto& [shard, id] : shard_ids) {
    for (const SafetensorsTensorInfo& t : s.shards_[id].tensor_infos()) {
      const auto it = s.index_.find(t.name);
      if (it == s.index_.end()) {
        throw Error(ErrorCode::kFormat, index_path + ": shard " + in_quotes(shard) +
                                            " holds tensor " + in_quotes(t.name) +
                                            ", which the index does not list");
      }
      if (it->second != id) {
        throw Error(ErrorCode::kFormat,
                    index_path + ": tensor " + in_quotes(t.name) + " is in shard " +
                        in_quotes(shard) + " and in shard " +
                        in_quotes(fs::path(s.shards_[it->second].path()).filename().string()) +
                        " (the index names the latter)");
      }
    }
  }
  return s;
}

std::vector<std::string> ShardedSafetensors::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, shard] : index_) names.push_back(name);
  return names;
}

const SafetensorsTensorInfo* ShardedSafetensors::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : shards_[it->second].find(name);
}

Tensor ShardedSafetensors::tensor(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw Error(ErrorCode::kNotFound, path_ + ": no tensor named " + name);
  return shards_[it->second].tensor(name);
}

}  // namespace glassbox
