// The request body behind rack.input: read once from the router, kept so
// that the application may rewind, in memory up to a limit and beyond it in
// an unlinked temporary file (as Unit and Puma do), so a large upload costs
// disk, not memory. No Ruby here: the source is a callback, and the unit
// tests feed it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace canopy::ruby {

class RequestBody {
  public:
    // Copies up to `capacity` bytes of the body's continuation into `buffer`
    // and sets *got (0 exactly at the end). Returns a CANOPY_* code; any
    // code other than CANOPY_OK is passed back to the caller of read() and
    // nothing is stored, so the call may be repeated.
    using Source = int (*)(void* context, char* buffer, size_t capacity, size_t* got);

    // Results besides the source's CANOPY_* codes.
    static constexpr int kStorageError = -1;  // the temporary file failed; see error()

    // `temp_directory` must outlive the object (static storage).
    RequestBody(Source source, void* context, size_t memory_limit, const char* temp_directory);
    ~RequestBody();
    RequestBody(const RequestBody&) = delete;
    RequestBody& operator=(const RequestBody&) = delete;

    // Copies up to `capacity` bytes from the current position to `buffer`,
    // pulling from the source (once) when everything stored was read; *got
    // is 0 at the end of the body. Returns CANOPY_OK (0), a source code or
    // kStorageError.
    int read(char* buffer, size_t capacity, size_t* got);

    // Appends the next line (through '\n', or to the end of the body) to
    // `line`; nothing appended means the end.
    int readLine(std::string& line);

    // Back to the first byte; what was read is served again from storage.
    void rewind() { position_ = 0; }

    uint64_t position() const { return position_; }
    uint64_t received() const { return received_; }
    bool spilled() const { return file_ >= 0; }
    const std::string& error() const { return error_; }

  private:
    int pull();
    int spill();
    int copyStored(char* buffer, size_t capacity, size_t* got);

    Source source_;
    void* context_;
    size_t memory_limit_;
    const char* temp_directory_;
    std::string memory_;  // the body received so far, while under the limit
    int file_ = -1;       // the body received so far, once over the limit
    uint64_t received_ = 0;
    uint64_t position_ = 0;
    bool ended_ = false;
    std::string error_;
    std::string scratch_;  // one pull's bytes, once spilled
};

}  // namespace canopy::ruby
