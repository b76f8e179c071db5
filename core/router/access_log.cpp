#include "core/router/access_log.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstring>

#include "core/base/log.h"

namespace canopy {
namespace {

constexpr size_t kFlushThreshold = 64 * 1024;

}  // namespace

Result<std::shared_ptr<AccessLog>> AccessLog::compile(const json::Value& setting) {
    auto log = std::make_shared<AccessLog>();
    const json::Value* format = nullptr;
    if (setting.isString()) {
        log->path_ = setting.asString();
    } else {
        const json::Value* path = setting.find("path");
        if (path == nullptr || !path->isString() || path->asString().empty()) {
            return Error{"The access log needs a \"path\"."};
        }
        log->path_ = path->asString();
        format = setting.find("format");
        if (const json::Value* condition = setting.find("if"); condition != nullptr) {
            auto compiled = routing::Condition::compile(condition->asString());
            if (!compiled) {
                return compiled.error();
            }
            log->condition_ = std::move(*compiled);
        }
    }
    if (format != nullptr && format->isObject()) {
        for (const auto& member : format->asObject()) {
            auto compiled =
                routing::Template::compile(member.value.isString() ? member.value.asString() : "");
            if (!compiled) {
                return compiled.error();
            }
            log->fields_.emplace_back(member.key, std::move(*compiled));
        }
    } else {
        auto compiled = routing::Template::compile(format != nullptr && format->isString()
                                                       ? std::string_view(format->asString())
                                                       : kDefaultFormat);
        if (!compiled) {
            return compiled.error();
        }
        log->format_ = std::move(*compiled);
    }
    return log;
}

AccessLog::~AccessLog() {
    flush();
}

void AccessLog::setFile(UniqueFd fd) {
    std::lock_guard lock(mutex_);
    file_ = std::move(fd);
}

void AccessLog::appendLine(const routing::RequestView& request, std::string& out) const {
    if (format_) {
        format_->appendTo(request, out, "-");
    } else {
        out += '{';
        bool first = true;
        for (const auto& [name, value] : fields_) {
            if (!first) {
                out += ',';
            }
            first = false;
            json::appendQuoted(out, name);
            out += ':';
            json::appendQuoted(out, value.evaluate(request));
        }
        out += '}';
    }
    out += '\n';
}

void AccessLog::record(const routing::RequestView& request) {
    if (condition_ && !condition_->holds(request)) {
        return;
    }
    std::string line;
    appendLine(request, line);
    bool full = false;
    {
        std::lock_guard lock(mutex_);
        pending_ += line;
        full = pending_.size() >= kFlushThreshold;
    }
    if (full) {
        flush();
    }
}

void AccessLog::flush() {
    std::string writing;
    int fd = -1;
    {
        std::lock_guard lock(mutex_);
        writing.swap(pending_);
        fd = file_.get();
        if (fd < 0 || writing.empty()) {
            return;
        }
        // Written under the lock: a reopen cannot close the descriptor mid-write.
        size_t offset = 0;
        while (offset < writing.size()) {
            ssize_t written = ::write(fd, writing.data() + offset, writing.size() - offset);
            if (written < 0) {
                if (errno == EINTR) {
                    continue;
                }
                log::error("cannot write the access log \"{}\": {}", path_, std::strerror(errno));
                return;
            }
            offset += static_cast<size_t>(written);
        }
    }
}

}  // namespace canopy
