// Which GPUs a build's code runs on. Plain C++ (no CUDA), so the rule is tested in every build.
//   sm_XYa  (arch-specific, e.g. sm_90a: wgmma, TMA): compute capability X.Y exactly
//   sm_XY   (a cubin): the same major version, minor >= Y
//   compute_XY (PTX, compiled by the driver at load): any capability >= X.Y
//   emulated (the cuda-emu build): any device
#pragma once
#include <sstream>
#include <string>

namespace dsn {

/** "" when a device of compute capability major.minor can run code built for `archs`
 *  (comma-separated, as CMake's CUDA architectures); else why not, naming both sides. */
inline std::string cudaArchMismatch(const std::string& archs, int major, int minor) {
  std::stringstream list(archs);
  std::string a, needs;
  const int cc = major * 10 + minor;
  while (std::getline(list, a, ',')) {
    if (a == "emulated") return "";
    bool ptx = a.rfind("compute_", 0) == 0;
    size_t at = ptx ? 8 : a.rfind("sm_", 0) == 0 ? 3 : std::string::npos;
    if (at == std::string::npos || a.size() < at + 2) continue;
    size_t end = at;
    while (end < a.size() && a[end] >= '0' && a[end] <= '9') ++end;
    if (end - at < 2 || end - at > 4) continue;
    const int code = std::stoi(a.substr(at, end - at));
    const bool specific = end < a.size() && (a[end] == 'a' || a[end] == 'f');
    const int cm = code / 10, cn = code % 10;
    std::string need = ptx ? ">= " + std::to_string(cm) + "." + std::to_string(cn)
                       : specific ? std::to_string(cm) + "." + std::to_string(cn) + (a[end] == 'f' ? " (or a later minor)" : "")
                                  : std::to_string(cm) + ".x with x >= " + std::to_string(cn);
    needs += (needs.empty() ? "" : ", ") + a + " needs compute capability " + need;
    if (ptx ? cc >= code : specific ? (a[end] == 'a' ? cc == code : (major == cm && minor >= cn)) : (major == cm && minor >= cn))
      return "";
  }
  std::ostringstream s;
  s << "it has compute capability " << major << "." << minor << ", but this build has code for " << (archs.empty() ? "no architecture" : archs)
    << " only (" << (needs.empty() ? "none usable" : needs) << ")";
  return s.str();
}

}  // namespace dsn
