// A small test harness for cuda_emu_test: TEST(name) registers a case; CHECK records a failure with
// its line; main runs every case (or those named on the command line) and prints one line each.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

struct EmuCase {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<EmuCase>& emuCases() {
  static std::vector<EmuCase> v;
  return v;
}
inline std::vector<std::string>& emuFailures() {
  static std::vector<std::string> v;
  return v;
}
struct EmuRegister {
  EmuRegister(const char* n, std::function<void()> f) { emuCases().push_back({n, std::move(f)}); }
};
#define EMU_CAT2(a, b) a##b
#define EMU_CAT(a, b) EMU_CAT2(a, b)
#define TEST(name)                                                  \
  static void EMU_CAT(test_, name)();                               \
  static EmuRegister EMU_CAT(reg_, name)(#name, EMU_CAT(test_, name)); \
  static void EMU_CAT(test_, name)()
#define CHECK(cond, ...)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      char emu_b[512];                                                                   \
      snprintf(emu_b, sizeof emu_b, __VA_ARGS__);                                        \
      emuFailures().push_back(std::string("line ") + std::to_string(__LINE__) + ": " + #cond + ": " + emu_b); \
    }                                                                                    \
  } while (0)
