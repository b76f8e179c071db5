#pragma once

// The access log: one line per request in the configured format, buffered
// in memory and written in large pieces so a worker thread never waits on
// the disk per request. The file is opened by main (it may be root) and
// handed over; on SIGUSR1 the router asks for a fresh descriptor.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/base/unique_fd.h"
#include "core/json/value.h"
#include "core/routing/template.h"

namespace canopy {

class AccessLog {
  public:
    // Unit's default, the Combined Log Format.
    static constexpr std::string_view kDefaultFormat =
        R"($remote_addr - - [$time_local] "$request_line" $status $body_bytes_sent )"
        R"("$header_referer" "$header_user_agent")";

    // From the configuration's `access_log` (a path, or {path, format, if}).
    static Result<std::shared_ptr<AccessLog>> compile(const json::Value& setting);
    ~AccessLog();

    const std::string& path() const { return path_; }
    void setFile(UniqueFd fd);

    // Formats the request's line (or nothing when `if` says no) and queues it.
    void record(const routing::RequestView& request);
    // Writes what is queued. Thread-safe.
    void flush();

  private:
    void appendLine(const routing::RequestView& request, std::string& out) const;

    std::string path_;
    std::optional<routing::Template> format_;                        // a text line
    std::vector<std::pair<std::string, routing::Template>> fields_;  // or a JSON object
    std::optional<routing::Condition> condition_;

    std::mutex mutex_;
    UniqueFd file_;
    std::string pending_;
};

}  // namespace canopy
