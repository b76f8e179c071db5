#pragma once

// The certificate bundles the control API manages under /certificates, kept
// as files in one directory (<statedir>/certs): each bundle is stored
// verbatim under its name, readable by the owner only, and published
// atomically so a crash never leaves a half-written bundle under a valid
// name. Nothing is cached: the directory is the truth, so a restart sees
// exactly what the API last answered.

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/base/check.h"
#include "core/base/result.h"
#include "core/base/unique_fd.h"
#include "core/json/value.h"

namespace canopy::tls {

// What went wrong, for the controller to pick the HTTP status.
enum class StoreErrorKind {
    InvalidName,         // 400 "Invalid certificate name."
    AlreadyExists,       // 400 "Certificate already exists."
    NotFound,            // 404 "Certificate doesn't exist."
    InvalidCertificate,  // 400 "Invalid certificate."
    StorageFailure,      // 500: the directory or a file could not be read or written
};

struct StoreError {
    StoreErrorKind kind;
    std::string title;   // Unit's "error" value, e.g. "Certificate already exists."
    std::string detail;  // the "detail" value: why; may be empty
};

// Result<T> with a StoreError in place of canopy::Error, so that the title
// travels with the detail.
template <typename T>
class [[nodiscard]] StoreResult {
  public:
    StoreResult(T value) : state_(std::move(value)) {}           // NOLINT: implicit by design
    StoreResult(StoreError error) : state_(std::move(error)) {}  // NOLINT

    bool ok() const { return std::holds_alternative<T>(state_); }
    explicit operator bool() const { return ok(); }

    T& value() & {
        CANOPY_CHECK(ok(), "StoreResult::value() on an error: " + error().title);
        return std::get<T>(state_);
    }
    const T& value() const& {
        CANOPY_CHECK(ok(), "StoreResult::value() on an error: " + error().title);
        return std::get<T>(state_);
    }
    T&& value() && {
        CANOPY_CHECK(ok(), "StoreResult::value() on an error: " + error().title);
        return std::get<T>(std::move(state_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const StoreError& error() const {
        CANOPY_CHECK(!ok(), "StoreResult::error() on a value");
        return std::get<StoreError>(state_);
    }

  private:
    std::variant<T, StoreError> state_;
};

template <>
class [[nodiscard]] StoreResult<void> {
  public:
    StoreResult() = default;
    StoreResult(StoreError error) : error_(std::move(error)), failed_(true) {}  // NOLINT

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const StoreError& error() const {
        CANOPY_CHECK(failed_, "StoreResult::error() on success");
        return error_;
    }

  private:
    StoreError error_{};
    bool failed_ = false;
};

// A directory of certificate bundles. Names are file names: non-empty, at
// most 255 bytes, without '/' or NUL, neither "." nor "..", and not starting
// with ".canopy-tmp." (the prefix of the store's own temporary files).
//
// Not thread-safe: one owner (the controller) calls it. Other processes may
// read the files; only the store writes them.
class CertificateStore {
  public:
    // Opens `directory`, creating it with mode 0700 when missing (its parent
    // must exist), and removes temporary files a crash left behind.
    static Result<CertificateStore> open(std::filesystem::path directory);

    CertificateStore(CertificateStore&&) noexcept = default;
    CertificateStore& operator=(CertificateStore&&) noexcept = default;

    const std::filesystem::path& directory() const { return directory_; }

    // Whether `name` may name a bundle (see the class comment).
    static bool isValidName(std::string_view name);

    // The names of the stored bundles, sorted bytewise.
    StoreResult<std::vector<std::string>> names() const;

    // The bundle as it was uploaded.
    StoreResult<std::string> read(std::string_view name) const;

    // The info object of a stored bundle (see inspectCertificateBundle). A
    // file that no longer holds a valid bundle counts as absent, as in all().
    StoreResult<json::Value> info(std::string_view name) const;

    // Stores `pem` under `name` and returns its info. Refuses an invalid
    // name, an existing name (bundles are never overwritten: delete first)
    // and an invalid bundle, whose detail says why.
    StoreResult<json::Value> add(std::string_view name, std::string_view pem);

    // Deletes the bundle; NotFound when there is none.
    StoreResult<void> remove(std::string_view name);

    // An object: name -> info for every stored bundle, in name order.
    // Unreadable or invalid files are left out with a log line, so a damaged
    // file cannot keep the others from loading.
    StoreResult<json::Value> all() const;

  private:
    CertificateStore(std::filesystem::path directory, UniqueFd directory_fd)
        : directory_(std::move(directory)), directory_fd_(std::move(directory_fd)) {}

    std::filesystem::path directory_;
    UniqueFd directory_fd_;  // every file operation is relative to it
};

}  // namespace canopy::tls
