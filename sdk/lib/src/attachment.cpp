#include "attachment.h"

#include <charconv>
#include <cstring>

namespace canopy::app {

using transport::Errc;
using transport::Error;
using transport::Result;

namespace {

template <typename T>
bool parseNumber(std::string_view text, T& out) {
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc{} && end == text.data() + text.size();
}

// Splits `text` at `separator` into exactly `count` numbers.
template <typename T, size_t N>
bool parseList(std::string_view text, char separator, T (&out)[N]) {
    for (size_t index = 0; index < N; ++index) {
        size_t end = text.find(separator);
        std::string_view item = text.substr(0, end);
        if (!parseNumber(item, out[index])) {
            return false;
        }
        if (index + 1 < N) {
            if (end == std::string_view::npos) {
                return false;
            }
            text.remove_prefix(end + 1);
        } else if (end != std::string_view::npos) {
            return false;
        }
    }
    return true;
}

Error invalid(const char* detail) {
    return Error{Errc::Invalid, 0, detail};
}

}  // namespace

Result<Attachment> parseAttachment(std::string_view text) {
    Attachment attachment;
    bool have_version = false;
    bool have_geometry = false;
    bool have_segments = false;
    while (!text.empty()) {
        size_t space = text.find(' ');
        std::string_view pair = text.substr(0, space);
        text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
        if (pair.empty()) {
            continue;
        }
        size_t equals = pair.find('=');
        if (equals == std::string_view::npos) {
            return invalid("attachment item without '='");
        }
        std::string_view key = pair.substr(0, equals);
        std::string_view value = pair.substr(equals + 1);
        bool ok = true;
        if (key == "canopy-app") {
            uint32_t version = 0;
            ok = parseNumber(value, version);
            if (ok && version != kAttachmentVersion) {
                return invalid("unsupported attachment version");
            }
            have_version = ok;
        } else if (key == "socket") {
            ok = parseNumber(value, attachment.socket_fd);
        } else if (key == "channel") {
            ok = parseNumber(value, attachment.channel_fd);
        } else if (key == "queue") {
            ok = parseNumber(value, attachment.queue_fd);
        } else if (key == "router") {
            ok = parseNumber(value, attachment.router_fd);
        } else if (key == "consumers") {
            while (ok && !value.empty()) {
                size_t comma = value.find(',');
                std::string_view item = value.substr(0, comma);
                value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
                ConsumerSlot slot;
                int pair_values[2] = {};
                ok = parseList(item, ':', pair_values) && pair_values[0] >= 0;
                slot.index = static_cast<uint32_t>(pair_values[0]);
                slot.event_fd = pair_values[1];
                attachment.consumers.push_back(slot);
            }
        } else if (key == "geometry") {
            uint32_t values[4] = {};
            ok = parseList(value, ',', values);
            attachment.channel = {values[0], values[1], values[2], values[3]};
            have_geometry = ok;
        } else if (key == "segments") {
            uint32_t values[2] = {};
            ok = parseList(value, ',', values);
            attachment.segments = {values[0], values[1]};
            have_segments = ok;
        } else if (key == "shm") {
            ok = parseNumber(value, attachment.shm_budget);
        } else if (key == "requests") {
            ok = parseNumber(value, attachment.request_limit);
        }
        // Unknown keys are ignored: a newer host may add some.
        if (!ok) {
            return invalid("attachment value malformed");
        }
    }
    if (!have_version) {
        return invalid("attachment without canopy-app version");
    }
    if (attachment.socket_fd < 0 || attachment.channel_fd < 0 || attachment.queue_fd < 0 ||
        attachment.router_fd < 0 || attachment.consumers.empty()) {
        return invalid("attachment lacks a descriptor");
    }
    if (!have_geometry || !attachment.channel.valid() || !have_segments ||
        !attachment.segments.valid()) {
        return invalid("attachment geometry missing or out of range");
    }
    for (const ConsumerSlot& slot : attachment.consumers) {
        if (slot.event_fd < 0 || slot.index >= attachment.channel.max_consumers) {
            return invalid("attachment consumer slot out of range");
        }
    }
    if (attachment.shm_budget < attachment.segments.mappedSize()) {
        return invalid("attachment shm budget smaller than one segment");
    }
    return attachment;
}

std::string formatAttachment(const Attachment& attachment) {
    std::string text = "canopy-app=" + std::to_string(kAttachmentVersion);
    auto add = [&](const char* key, const std::string& value) {
        text += ' ';
        text += key;
        text += '=';
        text += value;
    };
    add("socket", std::to_string(attachment.socket_fd));
    add("channel", std::to_string(attachment.channel_fd));
    add("queue", std::to_string(attachment.queue_fd));
    add("router", std::to_string(attachment.router_fd));
    std::string consumers;
    for (const ConsumerSlot& slot : attachment.consumers) {
        if (!consumers.empty()) {
            consumers += ',';
        }
        consumers += std::to_string(slot.index) + ':' + std::to_string(slot.event_fd);
    }
    add("consumers", consumers);
    const auto& geometry = attachment.channel;
    add("geometry", std::to_string(geometry.queue_capacity) + ',' +
                        std::to_string(geometry.stream_slots) + ',' +
                        std::to_string(geometry.max_consumers) + ',' +
                        std::to_string(geometry.stream_credit));
    add("segments", std::to_string(attachment.segments.chunk_size) + ',' +
                        std::to_string(attachment.segments.chunk_count));
    add("shm", std::to_string(attachment.shm_budget));
    if (attachment.request_limit != 0) {
        add("requests", std::to_string(attachment.request_limit));
    }
    return text;
}

}  // namespace canopy::app
