// One error path: native code throws dsn::Error (with a JS kind); the N-API boundary turns it into
// a JS TypeError / RangeError / Error. Kernels running on a stream worker throw the same type; the
// stream records it and rejects the next read() with it. Nothing here aborts the process.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dsn {

enum class ErrorKind { Error, Type, Range };

struct Error : std::runtime_error {
  ErrorKind kind;
  Error(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

template <typename... Args>
[[noreturn]] void throwType(Args&&... args) { throw Error(ErrorKind::Type, cat(args...)); }
template <typename... Args>
[[noreturn]] void throwRange(Args&&... args) { throw Error(ErrorKind::Range, cat(args...)); }
template <typename... Args>
[[noreturn]] void throwError(Args&&... args) { throw Error(ErrorKind::Error, cat(args...)); }

}  // namespace dsn
