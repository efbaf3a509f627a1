// The registries behind dispatch.h: which devices each op runs on, op ids for device errors.
#include "dispatch.h"

#include <map>
#include <mutex>

namespace dsn {

namespace {

std::map<std::string, bool>& kernelTable() {
  static auto* t = new std::map<std::string, bool>();  // op -> has a CUDA kernel
  return *t;
}

std::mutex g_idMu;
std::vector<std::string>& idTable() {
  static auto* t = new std::vector<std::string>();
  return *t;
}

const char* whatText(uint32_t what) {
  switch (DeviceErrorWhat(what)) {
    case DeviceErrorWhat::indexOutOfRange: return "index";
    case DeviceErrorWhat::expertIdOutOfRange: return "expert id";
    case DeviceErrorWhat::tokenIdOutOfRange: return "token id";
    case DeviceErrorWhat::offsetOutOfRange: return "offset";
    case DeviceErrorWhat::keyIndexOutOfRange: return "key index";
    case DeviceErrorWhat::rowCountOutOfRange: return "row count";
    case DeviceErrorWhat::positionOutOfRange: return "position";
    case DeviceErrorWhat::slotOutOfRange: return "slot";
    default: return nullptr;
  }
}

}  // namespace

KernelRegistration::KernelRegistration(const char* op, bool cuda) { kernelTable()[op] = kernelTable()[op] || cuda; }

std::vector<std::pair<std::string, std::vector<std::string>>> opDevices() {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (auto& kv : kernelTable()) {
    std::vector<std::string> d{"cpu"};
    if (kv.second) d.push_back("cuda");
    out.emplace_back(kv.first, d);
  }
  return out;
}

uint32_t opId(const char* op) {
  std::lock_guard<std::mutex> lock(g_idMu);
  auto& t = idTable();
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] == op) return uint32_t(i + 1);
  t.push_back(op);
  return uint32_t(t.size());
}

std::string opName(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_idMu);
  auto& t = idTable();
  return id >= 1 && id <= t.size() ? t[id - 1] : "an op (unknown id " + std::to_string(id) + ")";
}

std::string deviceErrorText(const char* op, uint32_t what, int64_t value, int64_t bound) {
  const char* w = whatText(what);
  if (!w) return cat(op, ": a kernel reported error code ", what, " (value ", value, ", bound ", bound, ")");
  return cat(op, ": ", w, " ", value, " is out of range [0, ", bound, ")");
}

}  // namespace dsn
