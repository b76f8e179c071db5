#include "core/tls/certificate_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/base/log.h"
#include "core/tls/certificate_bundle.h"

namespace canopy::tls {
namespace {

// Temporary files live in the store's own directory so that publishing one
// is a link within a file system; names with this prefix are refused, so a
// temporary file never passes for a bundle.
constexpr std::string_view kTemporaryPrefix = ".canopy-tmp.";
constexpr size_t kMaxNameLength = 255;  // NAME_MAX of Linux file systems

constexpr std::string_view kInvalidNameTitle = "Invalid certificate name.";
constexpr std::string_view kExistsTitle = "Certificate already exists.";
constexpr std::string_view kNotFoundTitle = "Certificate doesn't exist.";
constexpr std::string_view kInvalidCertificateTitle = "Invalid certificate.";
constexpr std::string_view kStoreFailedTitle = "Failed to store certificate.";
constexpr std::string_view kReadFailedTitle = "Failed to read certificates.";
constexpr std::string_view kDeleteFailedTitle = "Failed to delete certificate.";

StoreError storeError(StoreErrorKind kind, std::string_view title, std::string detail = {}) {
    return StoreError{kind, std::string(title), std::move(detail)};
}

// The message is built here, after errno was read: building it at the call
// site may allocate, and an allocation may change errno.
StoreError systemFailure(std::string_view title, std::string_view operation,
                         std::string_view name = {}, int error_number = errno) {
    const std::string what =
        name.empty() ? std::string(operation) : fmt::format("{}(\"{}\")", operation, name);
    return storeError(StoreErrorKind::StorageFailure, title,
                      systemError(what, error_number).message);
}

// Writes all of `data`, resuming after short writes and signals.
bool writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t written = ::write(fd, data.data(), data.size());
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<size_t>(written));
    }
    return true;
}

// Regular files (or links to them) in the store's directory, minus
// temporary files; `on_entry` gets each name.
template <typename OnEntry>
Result<void> forEachEntry(int directory_fd, OnEntry on_entry) {
    // A fresh open file description, so listings never share a read offset.
    const int listing_fd = ::openat(directory_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (listing_fd < 0) {
        return systemError("opening the certificate directory");
    }
    DIR* listing = ::fdopendir(listing_fd);
    if (listing == nullptr) {
        const int error_number = errno;
        ::close(listing_fd);
        return systemError("listing the certificate directory", error_number);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> owner(listing, &::closedir);
    for (;;) {
        errno = 0;
        const dirent* entry = ::readdir(listing);
        if (entry == nullptr) {
            if (errno != 0) {
                return systemError("listing the certificate directory");
            }
            return {};
        }
        const std::string_view name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        on_entry(name, entry->d_type);
    }
}

bool isRegularFile(int directory_fd, std::string_view name, unsigned char type) {
    if (type == DT_REG) {
        return true;
    }
    if (type != DT_LNK && type != DT_UNKNOWN) {
        return false;
    }
    // A link an administrator put here counts when it leads to a file.
    struct stat status {};
    return ::fstatat(directory_fd, std::string(name).c_str(), &status, 0) == 0 &&
           S_ISREG(status.st_mode);
}

}  // namespace

Result<CertificateStore> CertificateStore::open(std::filesystem::path directory) {
    // 0700: the bundles hold private keys. An existing directory keeps the
    // mode its administrator chose, with a warning when it is wider.
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
        const int error_number = errno;
        return systemError(fmt::format("mkdir(\"{}\")", directory.string()), error_number);
    }
    UniqueFd directory_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!directory_fd) {
        const int error_number = errno;
        return systemError(fmt::format("open(\"{}\")", directory.string()), error_number);
    }
    struct stat status {};
    if (::fstat(directory_fd.get(), &status) == 0 && (status.st_mode & 0077) != 0) {
        log::warn("certificate directory \"{}\" is accessible to others (mode {:o})",
                  directory.string(), status.st_mode & 07777);
    }

    // Temporary files outlive only a crash between creating and publishing.
    std::vector<std::string> leftovers;
    auto listed = forEachEntry(directory_fd.get(), [&](std::string_view name, unsigned char) {
        if (name.starts_with(kTemporaryPrefix)) {
            leftovers.emplace_back(name);
        }
    });
    if (!listed) {
        return Error{fmt::format("\"{}\": {}", directory.string(), listed.error().message),
                     listed.error().system_errno};
    }
    for (const std::string& leftover : leftovers) {
        if (::unlinkat(directory_fd.get(), leftover.c_str(), 0) != 0) {
            const int error_number = errno;
            log::warn("cannot remove temporary file \"{}\" in \"{}\": {}", leftover,
                      directory.string(), systemError("unlink", error_number).message);
        }
    }
    return CertificateStore(std::move(directory), std::move(directory_fd));
}

bool CertificateStore::isValidName(std::string_view name) {
    return !name.empty() && name.size() <= kMaxNameLength && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos &&
           !name.starts_with(kTemporaryPrefix);
}

StoreResult<std::vector<std::string>> CertificateStore::names() const {
    std::vector<std::string> found;
    auto listed = forEachEntry(directory_fd_.get(), [&](std::string_view name, unsigned char type) {
        if (!name.starts_with(kTemporaryPrefix) && isRegularFile(directory_fd_.get(), name, type)) {
            found.emplace_back(name);
        }
    });
    if (!listed) {
        return storeError(StoreErrorKind::StorageFailure, kReadFailedTitle, listed.error().message);
    }
    std::sort(found.begin(), found.end());
    return found;
}

StoreResult<std::string> CertificateStore::read(std::string_view name) const {
    if (!isValidName(name)) {
        return storeError(StoreErrorKind::InvalidName, kInvalidNameTitle);
    }
    UniqueFd file(::openat(directory_fd_.get(), std::string(name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) {
        if (errno == ENOENT) {
            return storeError(StoreErrorKind::NotFound, kNotFoundTitle);
        }
        return systemFailure(kReadFailedTitle, "open", name);
    }
    struct stat status {};
    if (::fstat(file.get(), &status) != 0) {
        return systemFailure(kReadFailedTitle, "fstat", name);
    }
    if (!S_ISREG(status.st_mode)) {
        return storeError(StoreErrorKind::NotFound, kNotFoundTitle,
                          fmt::format("\"{}\" in the certificate directory is not a file.", name));
    }
    std::string content;
    content.reserve(static_cast<size_t>(status.st_size));
    char buffer[16384];
    for (;;) {
        const ssize_t count = ::read(file.get(), buffer, sizeof(buffer));
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return systemFailure(kReadFailedTitle, "read", name);
        }
        if (count == 0) {
            return content;
        }
        content.append(buffer, static_cast<size_t>(count));
    }
}

StoreResult<json::Value> CertificateStore::info(std::string_view name) const {
    auto content = read(name);
    if (!content) {
        return content.error();
    }
    auto inspected = inspectCertificateBundle(*content);
    if (!inspected) {
        // all() leaves such a file out; answering the same here keeps GET
        // /certificates and GET /certificates/<name> consistent.
        log::warn("certificate \"{}\" in \"{}\" is invalid: {}", name, directory_.string(),
                  inspected.error().message);
        return storeError(StoreErrorKind::NotFound, kNotFoundTitle,
                          "The stored bundle is invalid: " + inspected.error().message);
    }
    return std::move(inspected).value();
}

StoreResult<json::Value> CertificateStore::add(std::string_view name, std::string_view pem) {
    if (!isValidName(name)) {
        return storeError(StoreErrorKind::InvalidName, kInvalidNameTitle);
    }
    const std::string file_name(name);
    struct stat status {};
    if (::fstatat(directory_fd_.get(), file_name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) {
        return storeError(StoreErrorKind::AlreadyExists, kExistsTitle);
    }
    if (errno != ENOENT) {
        return systemFailure(kStoreFailedTitle, "stat", name);
    }
    auto inspected = inspectCertificateBundle(pem);
    if (!inspected) {
        return storeError(StoreErrorKind::InvalidCertificate, kInvalidCertificateTitle,
                          inspected.error().message);
    }

    std::string temporary_path = (directory_ / kTemporaryPrefix).string() + "XXXXXX";
    UniqueFd file(::mkostemp(temporary_path.data(), O_CLOEXEC));
    if (!file) {
        return systemFailure(kStoreFailedTitle, "creating a temporary file");
    }
    const std::string temporary_name = std::filesystem::path(temporary_path).filename().string();
    // From here on, every failure removes the temporary file.
    auto fail = [&](std::string_view operation, std::string_view target = {}) {
        const int error_number = errno;
        ::unlinkat(directory_fd_.get(), temporary_name.c_str(), 0);
        return systemFailure(kStoreFailedTitle, operation, target, error_number);
    };
    // mkostemp's mode is subject to the umask; the owner must be able to
    // read the file back, and nobody else may.
    if (::fchmod(file.get(), 0600) != 0) {
        return fail("fchmod");
    }
    if (!writeAll(file.get(), pem)) {
        return fail("write");
    }
    if (::fsync(file.get()) != 0) {
        return fail("fsync");
    }
    file.reset();
    // link() publishes the complete file under its name as rename() would,
    // but fails with EEXIST instead of replacing a bundle that appeared
    // meanwhile.
    if (::linkat(directory_fd_.get(), temporary_name.c_str(), directory_fd_.get(),
                 file_name.c_str(), 0) != 0) {
        if (errno == EEXIST) {
            ::unlinkat(directory_fd_.get(), temporary_name.c_str(), 0);
            return storeError(StoreErrorKind::AlreadyExists, kExistsTitle);
        }
        return fail("link", name);
    }
    if (::unlinkat(directory_fd_.get(), temporary_name.c_str(), 0) != 0) {
        const int error_number = errno;
        // The bundle is stored; the leftover goes at the next open().
        log::warn("cannot remove temporary file \"{}\" in \"{}\": {}", temporary_name,
                  directory_.string(), systemError("unlink", error_number).message);
    }
    // The new directory entry survives a crash only once the directory is
    // synced; the answer must not promise more than the disk holds.
    if (::fsync(directory_fd_.get()) != 0) {
        return systemFailure(kStoreFailedTitle, "fsync of the certificate directory");
    }
    return std::move(inspected).value();
}

StoreResult<void> CertificateStore::remove(std::string_view name) {
    if (!isValidName(name)) {
        return storeError(StoreErrorKind::InvalidName, kInvalidNameTitle);
    }
    if (::unlinkat(directory_fd_.get(), std::string(name).c_str(), 0) != 0) {
        if (errno == ENOENT) {
            return storeError(StoreErrorKind::NotFound, kNotFoundTitle);
        }
        return systemFailure(kDeleteFailedTitle, "unlink", name);
    }
    if (::fsync(directory_fd_.get()) != 0) {
        return systemFailure(kDeleteFailedTitle, "fsync of the certificate directory");
    }
    return {};
}

StoreResult<json::Value> CertificateStore::all() const {
    auto listed = names();
    if (!listed) {
        return listed.error();
    }
    json::Value bundles = json::Value::object();
    for (const std::string& name : *listed) {
        auto content = read(name);
        if (!content) {
            log::warn("certificate \"{}\" in \"{}\" is skipped: {} {}", name, directory_.string(),
                      content.error().title, content.error().detail);
            continue;
        }
        auto inspected = inspectCertificateBundle(*content);
        if (!inspected) {
            log::warn("certificate \"{}\" in \"{}\" is skipped: {}", name, directory_.string(),
                      inspected.error().message);
            continue;
        }
        bundles.set(name, std::move(inspected).value());
    }
    return bundles;
}

}  // namespace canopy::tls
