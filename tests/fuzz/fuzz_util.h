// Helpers shared by the libFuzzer targets (tests/fuzz/*_fuzz.cc).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>

#include "util/env.h"

namespace pomai::fuzz {

// A property the engine promises was broken: report and crash so libFuzzer keeps the input.
#define FUZZ_CHECK(cond, what)                                                       \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: %s\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                                \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

// Reads the last of `n` bytes at `p`: ASan checks the bounds.
inline void Touch(const void* p, size_t n) {
  if (n == 0) return;
  volatile uint8_t sink = static_cast<const uint8_t*>(p)[n - 1];
  (void)sink;
}

// Bytes in a buffer of exactly `size` bytes starting 64-byte aligned (what an
// mmap gives the readers), so ASan sees any read past the end.
class AlignedBytes {
 public:
  AlignedBytes(const uint8_t* data, size_t size)
      : size_(size), data_(static_cast<uint8_t*>(::operator new(size ? size : 1, std::align_val_t(64)))) {
    if (size) std::memcpy(data_, data, size);
  }
  ~AlignedBytes() { ::operator delete(data_, std::align_val_t(64)); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  uint8_t* data_;
};

// An Env whose MapFile serves registered in-memory files (exactly sized,
// 64-byte aligned copies) and forwards everything else to the default Env.
class MemoryMapEnv : public EnvWrapper {
 public:
  MemoryMapEnv() : EnvWrapper(Env::Default()) {}

  void Add(const std::string& path, const uint8_t* data, size_t size) {
    files_[path] = std::make_shared<AlignedBytes>(data, size);
  }

  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    auto it = files_.find(path);
    if (it == files_.end()) return EnvWrapper::MapFile(path);
    return std::unique_ptr<MappedFile>(new Mapped(it->second, path));
  }

 private:
  class Mapped : public MappedFile {
   public:
    Mapped(std::shared_ptr<AlignedBytes> bytes, std::string path) : bytes_(std::move(bytes)), path_(std::move(path)) {}
    const uint8_t* data() const override { return bytes_->size() ? bytes_->data() : nullptr; }
    size_t size() const override { return bytes_->size(); }
    const std::string& path() const override { return path_; }

   private:
    std::shared_ptr<AlignedBytes> bytes_;
    std::string path_;
  };

  std::unordered_map<std::string, std::shared_ptr<AlignedBytes>> files_;
};

}  // namespace pomai::fuzz
