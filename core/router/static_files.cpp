#include "core/router/static_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/base/log.h"
#include "core/http/byte_ranges.h"
#include "core/http/response.h"
#include "core/routing/request_target.h"

namespace canopy {
namespace {

// The status a failed open means: missing → 404, refused (permissions, a
// symlink or mount crossing that the action forbids, a way out of the
// chroot) → 403, anything else (out of descriptors...) → 500.
int openFailureStatus(int error_number) {
    switch (error_number) {
        case ENOENT:
        case ENOTDIR:
        case ENAMETOOLONG:
            return 404;
        case EACCES:
        case EPERM:
        case ELOOP:
        case EXDEV:
            return 403;
        default:
            return 500;
    }
}

int openat2File(int directory, const char* path, uint64_t flags, uint64_t resolve) {
    open_how how{};
    how.flags = flags;
    how.resolve = resolve;
    return static_cast<int>(::syscall(SYS_openat2, directory, path, &how, sizeof how));
}

// One share path, evaluated: the lookup for it.
StaticLookup lookUp(const routing::ShareAction& share, const routing::RequestView& request,
                    const http::MimeTypes& types, std::string path) {
    StaticLookup found;
    bool index = path.ends_with('/');
    if (index) {
        path += share.index;
    }
    found.content_type = std::string(types.typeOf(path));
    if (!index && share.types && !share.types->matches(found.content_type)) {
        found.status = 403;
        return found;
    }

    uint64_t resolve = 0;
    if (!share.follow_symlinks) {
        resolve |= RESOLVE_NO_SYMLINKS;
    }
    if (!share.traverse_mounts) {
        resolve |= RESOLVE_NO_XDEV;
    }
    UniqueFd root;
    int directory = AT_FDCWD;
    std::string relative = path;
    if (share.chroot) {
        std::string chroot = share.chroot->evaluate(request);
        if (!chroot.empty()) {
            if (!chroot.ends_with('/')) {
                chroot += '/';
            }
            if (!path.starts_with(chroot)) {
                found.status = 403;  // the file lies outside the chroot
                return found;
            }
            root.reset(::open(chroot.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (!root) {
                found.status = openFailureStatus(errno);
                return found;
            }
            directory = root.get();
            relative = path.substr(chroot.size());
            if (relative.empty()) {
                relative = ".";
            }
            // The limits apply to the part after the chroot; ".." and
            // symlinks resolve as if the chroot were '/'.
            resolve |= RESOLVE_IN_ROOT;
        }
    }
    found.file.reset(
        openat2File(directory, relative.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC, resolve));
    if (!found.file) {
        int error_number = errno;
        found.status = openFailureStatus(error_number);
        if (found.status == 500) {
            log::error("share: cannot open \"{}\": {}", path, std::strerror(error_number));
        }
        return found;
    }
    if (::fstat(found.file.get(), &found.info) != 0) {
        found.file.reset();
        found.status = 500;
        return found;
    }
    if (S_ISDIR(found.info.st_mode) && !index) {
        found.file.reset();
        found.status = 301;
        std::string location = routing::encodeLocation(std::string(request.path()) + "/");
        if (!request.query.empty()) {
            location += '?';
            location += request.query;
        }
        found.location = std::move(location);
        return found;
    }
    if (!S_ISREG(found.info.st_mode)) {
        found.file.reset();
        found.status = 404;
        return found;
    }
    found.status = 200;
    return found;
}

std::string boundary() {
    thread_local std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{:016x}{:04x}", random(), random() & 0xffff);
}

}  // namespace

StaticLookup findStaticFile(const routing::ShareAction& share, const routing::RequestView& request,
                            const http::MimeTypes& types) {
    StaticLookup found;
    for (const auto& path : share.paths) {
        found = lookUp(share, request, types, path.evaluate(request));
        if (found.status != 403 && found.status != 404) {
            break;
        }
    }
    return found;
}

uint64_t FileBody::size() const {
    uint64_t total = after.size();
    for (const auto& part : parts) {
        total += part.before.size() + part.length;
    }
    return total;
}

StaticAnswer planStaticAnswer(StaticLookup found, const routing::RequestView& request) {
    StaticAnswer answer;
    auto size = static_cast<uint64_t>(found.info.st_size);
    std::time_t mtime = found.info.st_mtim.tv_sec;
    std::string etag = http::formatEtag(mtime, size);
    std::string last_modified = http::formatHttpDate(mtime);
    auto header = [&request](std::string_view name) -> std::string_view {
        const auto* field = request.findHeader(name);
        return field == nullptr ? std::string_view() : field->value;
    };

    answer.fields.push_back({"Last-Modified", last_modified});
    answer.fields.push_back({"ETag", etag});
    if (http::notModified(header("If-None-Match"), header("If-Modified-Since"), etag, mtime)) {
        answer.status = 304;
        return answer;
    }

    http::RangeRequest range;
    if (const auto* field = request.findHeader("Range");
        field != nullptr && http::ifRangeHolds(header("If-Range"), etag, last_modified)) {
        range = http::parseRange(field->value, size);
    }
    answer.fields.push_back({"Accept-Ranges", "bytes"});
    switch (range.kind) {
        case http::RangeRequest::Kind::Whole:
            if (!found.content_type.empty()) {
                answer.fields.push_back({"Content-Type", found.content_type});
            }
            answer.body.parts.push_back({"", 0, size});
            break;
        case http::RangeRequest::Kind::Unsatisfiable:
            answer.status = 416;
            answer.fields.push_back({"Content-Range", fmt::format("bytes */{}", size)});
            answer.error_page = true;
            return answer;
        case http::RangeRequest::Kind::Partial:
            answer.status = 206;
            if (range.ranges.size() == 1) {
                const auto& only = range.ranges.front();
                if (!found.content_type.empty()) {
                    answer.fields.push_back({"Content-Type", found.content_type});
                }
                answer.fields.push_back({"Content-Range", http::contentRange(only, size)});
                answer.body.parts.push_back({"", only.first, only.length});
                break;
            }
            std::string separator = boundary();
            answer.fields.push_back(
                {"Content-Type", "multipart/byteranges; boundary=" + separator});
            for (const auto& part : range.ranges) {
                std::string before = "\r\n--" + separator + "\r\n";
                if (!found.content_type.empty()) {
                    before += "Content-Type: " + found.content_type + "\r\n";
                }
                before += "Content-Range: " + http::contentRange(part, size) + "\r\n\r\n";
                answer.body.parts.push_back({std::move(before), part.first, part.length});
            }
            answer.body.after = "\r\n--" + separator + "--\r\n";
            break;
    }
    answer.body.file = std::move(found.file);
    answer.content_length = answer.body.size();
    return answer;
}

}  // namespace canopy
