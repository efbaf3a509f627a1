#include "safetensors.h"

#include "mapguard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../runtime/errors.h"

namespace dsn::io {

namespace {

std::string errnoText(int e) { return cat(std::strerror(e), " (errno ", e, ")"); }

/** Closes a file descriptor on scope exit. */
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  Fd f;
  do f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0) throwError(path, ": cannot open: ", errnoText(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0) throwError(path, ": cannot stat: ", errnoText(errno));
  if (!S_ISREG(st.st_mode)) throwError(path, ": not a regular file");
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = uint64_t(st.st_size);
  if (m->size_ == 0) return m;
  if (m->size_ > uint64_t(SIZE_MAX)) throwRange(path, ": file too large to map (", m->size_, " bytes)");
  void* p = ::mmap(nullptr, size_t(m->size_), PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) throwError(path, ": cannot map ", m->size_, " bytes: ", errnoText(errno));
  m->data_ = static_cast<const uint8_t*>(p);
  m->guard_ = guardMapping(p, size_t(m->size_), path);  // a later truncation faults into a zero page, not a crash
  return m;
}

MappedFile::~MappedFile() {
  unguardMapping(guard_);
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_t(size_));
}

bool MappedFile::faulted() const { return mappingFaulted(guard_); }

SafetensorsMap openSafetensors(const std::string& path) {
  SafetensorsMap m;
  m.file = MappedFile::open(path);
  uint64_t size = m.file->size();
  if (size < 8)
    throwRange(path, ": file too small for a safetensors header (expected at least 8 bytes, received ", size, " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | m.file->data()[i];  // little-endian u64
  if (n > size - 8)
    throwRange(path, ": header length exceeds the file (expected at most ", size - 8, " bytes, received ", n, ")");
  if (n > kMaxHeaderBytes)
    throwRange(path, ": header length too large (expected at most ", kMaxHeaderBytes, " bytes, received ", n, ")");
  m.headerBytes = n;
  m.dataStart = 8 + n;
  m.dataBytes = size - m.dataStart;
  return m;
}

const uint8_t* tensorBytes(const SafetensorsMap& map, const TensorRange& r) {
  const std::string& file = map.path();
  // numel × size, refusing any product that does not fit: every factor is checked before use.
  uint64_t bytes = dtypeSize(r.dtype);
  for (size_t i = 0; i < r.shape.size(); ++i) {
    int64_t d = r.shape[i];
    if (d < 0) throwRange(file, ": tensor '", r.name, "': dimension ", i, " is negative (expected >= 0, received ", d, ")");
    if (d != 0 && bytes > (uint64_t(1) << 62) / uint64_t(d))
      throwRange(file, ": tensor '", r.name, "': shape too large (expected at most 2^62 bytes)");
    bytes *= uint64_t(d);
  }
  if (r.end < r.begin)
    throwRange(file, ": tensor '", r.name, "': data_offsets end before begin (expected end >= ", r.begin, ", received ", r.end, ")");
  if (r.end > map.dataBytes)
    throwRange(file, ": tensor '", r.name, "': data_offsets past the data region (expected end <= ", map.dataBytes,
               ", received ", r.end, ")");
  if (r.end - r.begin != bytes)
    throwRange(file, ": tensor '", r.name, "': byte length does not match shape and dtype (expected ", bytes,
               " bytes, received ", r.end - r.begin, ")");
  return map.file->data() + map.dataStart + r.begin;
}

}  // namespace dsn::io
