// Memory-mapped safetensors files.
//
// A safetensors file is: 8 bytes of little-endian u64 header length N, N bytes of UTF-8 JSON, then
// the data region. The JSON is parsed and validated in TypeScript (lib/model/safetensors.ts); this
// side maps the file read-only, checks the header length, hands the header bytes out, and re-checks
// every tensor range it is asked for, so that no mistake on the JavaScript side can read outside the
// mapping. Nothing here knows about N-API.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../runtime/dtype.h"

namespace dsn::io {

/** Largest header accepted (the format's own limit is 100 MB; we take 100 MiB). */
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

/** A regular file mapped read-only for the life of this object (unmapped by the destructor). */
class MappedFile {
 public:
  /** Opens and maps `path`; throws dsn::Error "<path>: …" when it cannot. An empty file maps to
   *  nothing (data() == nullptr, size() == 0). */
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  /** Whether a read of the mapping faulted because the file shrank on disk (see mapguard.h). */
  bool faulted() const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int guard_ = -1;  // mapguard slot
};

/** An open safetensors file: its mapping and where the header and the data region lie. */
struct SafetensorsMap {
  std::shared_ptr<MappedFile> file;
  uint64_t headerBytes = 0;  // N, the JSON header's length
  uint64_t dataStart = 0;    // 8 + N: offset of the data region in the file
  uint64_t dataBytes = 0;    // file size - dataStart

  const std::string& path() const { return file->path(); }
  const uint8_t* header() const { return file->data() + 8; }
};

/** Maps `path` and checks the header length: file >= 8 bytes, N <= file size - 8, N <= 100 MiB.
 *  Throws dsn::Error "<path>: <what> (expected …, received …)". */
SafetensorsMap openSafetensors(const std::string& path);

/** Where one tensor lies, as the JavaScript side read it from the header. */
struct TensorRange {
  std::string name;
  DType dtype = DType::u8;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data region, [begin, end)
  uint64_t end = 0;
};

/** The bytes of tensor `r` inside the mapping, after checking that every dimension is >= 0, that
 *  begin <= end <= dataBytes and that end - begin == numel × dtype size. Throws dsn::Error
 *  "<path>: tensor '<name>': <what> (expected …, received …)" otherwise. */
const uint8_t* tensorBytes(const SafetensorsMap& map, const TensorRange& r);

}  // namespace dsn::io
