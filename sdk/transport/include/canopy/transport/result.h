#pragma once

// Errors are values: every transport operation that can fail returns
// Result<T>. The error carries a static description, never an allocated
// string, because the transport runs on the request hot path and in app
// processes that may be short of memory.

#include <cstdint>
#include <utility>
#include <variant>

namespace canopy::transport {

enum class Errc : uint8_t {
    WouldBlock = 1,  // no credit, no free chunk, queue full or empty: wait for a wake-up
    Exhausted,       // the shared-memory budget is spent and nothing can be freed
    Corrupt,         // the peer left shared memory in a state no honest peer produces
    Aborted,         // the other side aborted the stream, or it was recycled
    Closed,          // end of stream: everything was read
    Invalid,         // an argument is out of range or an object is in the wrong state
    TooLarge,        // the data does not fit the limit that applies
    System,          // a system call failed; Error::system_errno says why
};

// A short, stable name for logs: "would-block", "corrupt", ...
const char* errcName(Errc code);

struct Error {
    Errc code = Errc::Invalid;
    int system_errno = 0;     // errno of the failing call when code == System
    const char* detail = "";  // static text: what failed
};

// Aborts the process with the error's text; used when a caller reads the
// value of a failed Result (a programming error, not a runtime condition).
[[noreturn]] void resultMisused(const Error* error);

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Error error) : state_(error) {}         // NOLINT

    bool ok() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return ok(); }

    T& value() & {
        if (!ok()) {
            resultMisused(&std::get<Error>(state_));
        }
        return std::get<T>(state_);
    }
    const T& value() const& {
        if (!ok()) {
            resultMisused(&std::get<Error>(state_));
        }
        return std::get<T>(state_);
    }
    T&& value() && {
        if (!ok()) {
            resultMisused(&std::get<Error>(state_));
        }
        return std::get<T>(std::move(state_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        if (ok()) {
            resultMisused(nullptr);
        }
        return std::get<Error>(state_);
    }
    // The error code, or std::nullopt-like 0 when ok: handy in switch statements.
    Errc code() const { return ok() ? Errc{} : error().code; }

  private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : error_(error), failed_(true) {}  // NOLINT

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const {
        if (!failed_) {
            resultMisused(nullptr);
        }
        return error_;
    }
    Errc code() const { return ok() ? Errc{} : error_.code; }

  private:
    Error error_{};
    bool failed_ = false;
};

// An error for a failed system call, capturing errno.
Error systemError(const char* detail);

}  // namespace canopy::transport
