#pragma once

// Errors are values in the core: a function that can fail returns Result<T>,
// whose error carries a message meant for the log or for an API answer.

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/base/check.h"

namespace canopy {

struct Error {
    std::string message;
    int system_errno = 0;  // errno of the failing call, 0 when not a system error
};

// An error for a failed system call: "<what>: <strerror(errno)>".
Error systemError(std::string_view what, int error_number = errno);

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
    Result(Error error) : state_(std::move(error)) {}  // NOLINT

    bool ok() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return ok(); }

    T& value() & {
        CANOPY_CHECK(ok(), "Result::value() on an error: " + error().message);
        return std::get<T>(state_);
    }
    const T& value() const& {
        CANOPY_CHECK(ok(), "Result::value() on an error: " + error().message);
        return std::get<T>(state_);
    }
    T&& value() && {
        CANOPY_CHECK(ok(), "Result::value() on an error: " + error().message);
        return std::get<T>(std::move(state_));
    }
    T& operator*() & { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        CANOPY_CHECK(!ok(), "Result::error() on a value");
        return std::get<Error>(state_);
    }

  private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}  // NOLINT

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const {
        CANOPY_CHECK(!ok(), "Result::error() on success");
        return *error_;
    }

  private:
    std::optional<Error> error_;
};

}  // namespace canopy
