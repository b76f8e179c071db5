#include "core/gateway/response_head.h"

#include <cstring>

namespace canopy::gateway {

using transport::Errc;
using transport::Error;
using transport::Result;

namespace {

template <typename T>
T load(std::span<const std::byte> bytes, size_t offset) {
    T value{};
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
}

template <typename T>
void append(std::string& out, T value) {
    char raw[sizeof value];
    std::memcpy(raw, &value, sizeof value);
    out.append(raw, sizeof value);
}

Error corrupt(const char* detail) {
    return Error{Errc::Corrupt, 0, detail};
}

// RFC 9110 tchar.
bool isToken(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool validName(std::string_view name) {
    if (name.empty() || name.size() > 255) {
        return false;
    }
    for (char c : name) {
        if (!isToken(c)) {
            return false;
        }
    }
    return true;
}

bool validValue(std::string_view value) {
    for (char c : value) {
        if (c == '\r' || c == '\n' || c == '\0') {
            return false;
        }
    }
    return true;
}

}  // namespace

Result<size_t> responseHeadLength(std::span<const std::byte> bytes, const ResponseLimits& limits) {
    if (bytes.size() < 8) {
        return Error{Errc::WouldBlock, 0, "response head record incomplete"};
    }
    if (load<uint32_t>(bytes, 0) != kResponseMagic) {
        return corrupt("response head record: bad magic");
    }
    auto total = load<uint32_t>(bytes, 4);
    if (total < kResponseHeadFixed || total > limits.max_head_bytes) {
        return corrupt("response head record: length out of range");
    }
    return size_t{total};
}

Result<ResponseHead> parseResponseHead(std::span<const std::byte> record,
                                       const ResponseLimits& limits) {
    auto total = responseHeadLength(record, limits);
    if (!total) {
        return total.code() == Errc::WouldBlock ? corrupt("response head record truncated")
                                                : total.error();
    }
    if (*total != record.size()) {
        return corrupt("response head record: length does not match");
    }
    ResponseHead head;
    head.status = load<uint16_t>(record, 8);
    auto flags = load<uint16_t>(record, 10);
    auto count = load<uint32_t>(record, 12);
    if (head.status < 100 || head.status > 999) {
        return corrupt("response head record: status out of range");
    }
    if ((flags & ~kResponseFlagUpgrade) != 0) {
        return corrupt("response head record: unknown flags");
    }
    head.upgrade = (flags & kResponseFlagUpgrade) != 0;
    // Each field needs at least 7 bytes (6 of lengths, a 1-byte name): bound
    // the count by the bytes before reserving anything.
    if (count > limits.max_fields || count > (record.size() - kResponseHeadFixed) / 7) {
        return corrupt("response head record: too many fields");
    }
    head.fields.reserve(count);
    size_t offset = kResponseHeadFixed;
    for (uint32_t index = 0; index < count; ++index) {
        if (record.size() - offset < 6) {
            return corrupt("response head record: truncated field");
        }
        size_t name_length = load<uint16_t>(record, offset);
        size_t value_length = load<uint32_t>(record, offset + 2);
        offset += 6;
        if (name_length > record.size() - offset ||
            value_length > record.size() - offset - name_length) {
            return corrupt("response head record: field overruns");
        }
        std::string_view name(reinterpret_cast<const char*>(record.data() + offset), name_length);
        std::string_view value(reinterpret_cast<const char*>(record.data() + offset + name_length),
                               value_length);
        if (!validName(name) || !validValue(value)) {
            return corrupt("response head record: bad field name or value");
        }
        head.fields.emplace_back(name, value);
        offset += name_length + value_length;
    }
    if (offset != record.size()) {
        return corrupt("response head record: bytes left over");
    }
    return head;
}

std::string encodeResponseHead(const ResponseHead& head) {
    std::string out;
    append(out, kResponseMagic);
    append(out, uint32_t{0});  // patched below
    append(out, head.status);
    append(out, static_cast<uint16_t>(head.upgrade ? kResponseFlagUpgrade : 0));
    append(out, static_cast<uint32_t>(head.fields.size()));
    for (const auto& [name, value] : head.fields) {
        append(out, static_cast<uint16_t>(name.size()));
        append(out, static_cast<uint32_t>(value.size()));
        out += name;
        out += value;
    }
    auto total = static_cast<uint32_t>(out.size());
    std::memcpy(out.data() + 4, &total, sizeof total);
    return out;
}

Result<FrameHeader> parseFrameHeader(std::span<const std::byte> bytes, uint32_t max_payload) {
    if (bytes.size() < kFrameHeaderSize) {
        return corrupt("frame header truncated");
    }
    FrameHeader header;
    header.first = static_cast<uint8_t>(bytes[0]);
    if (bytes[1] != std::byte{0} || load<uint16_t>(bytes, 2) != 0) {
        return corrupt("frame header: reserved bytes set");
    }
    header.length = load<uint32_t>(bytes, 4);
    if (header.length > max_payload) {
        return corrupt("frame payload too large");
    }
    return header;
}

void encodeFrameHeader(const FrameHeader& header, std::byte (&out)[kFrameHeaderSize]) {
    std::memset(out, 0, sizeof out);
    out[0] = static_cast<std::byte>(header.first);
    std::memcpy(out + 4, &header.length, sizeof header.length);
}

}  // namespace canopy::gateway
