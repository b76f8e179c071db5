#pragma once

// The `share` action (config-schema §3.5): finds the file a request names
// and plans its answer (200, 206 with one range or multipart/byteranges,
// 304, 416, 301 for a directory without its '/'). The connection sends
// the plan: the head from memory, the file's bytes with sendfile(), never
// read into memory here.
//
// Runs on the connection's worker thread; opening and stat-ing the file are
// short synchronous system calls, as in Unit and nginx.

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/http/mime_types.h"
#include "core/routing/request_view.h"
#include "core/routing/route_table.h"

namespace canopy {

// What one `share` action found for a request.
struct StaticLookup {
    // 200: `file` is open on a regular file; 301: a directory named without
    // its trailing '/', `location` set; 403 or 404: nothing to send (the
    // action's fallback, if any, runs instead).
    int status = 404;
    UniqueFd file;  // O_RDONLY | O_NONBLOCK | O_CLOEXEC
    struct stat info {};
    std::string content_type;  // "" when the table knows no type
    std::string location;
};

// Tries the action's paths in order (each template evaluated for
// `request`, the index appended to one ending in '/'), within `chroot` and
// the symlink and mount limits through openat2(). A 403 or 404 goes on to
// the next path; the last outcome is returned.
StaticLookup findStaticFile(const routing::ShareAction& share, const routing::RequestView& request,
                            const http::MimeTypes& types);

// The bytes of an answer that come from the file: parts, each some text
// (multipart boundaries and part heads) then a slice of the file, then the
// closing text.
struct FileBody {
    struct Part {
        std::string before;
        uint64_t offset = 0;
        uint64_t length = 0;
    };
    UniqueFd file;
    std::vector<Part> parts;
    std::string after;

    uint64_t size() const;
};

struct StaticAnswer {
    int status = 200;
    std::vector<routing::HeaderField> fields;  // besides the framing fields
    FileBody body;                             // empty parts: no body from the file
    uint64_t content_length = 0;
    // A generated error page (416) instead of a file body.
    bool error_page = false;
};

// Plans the answer to a GET or HEAD for the file `found` (status 200) from
// the request's conditional and Range fields.
StaticAnswer planStaticAnswer(StaticLookup found, const routing::RequestView& request);

}  // namespace canopy
