#include "canopy/transport/request_head.h"

#include <algorithm>
#include <cstring>

namespace canopy::transport {

namespace {

constexpr uint32_t kHeadMagic = 0x32485243;  // "CRH2"
constexpr size_t kFixedBytes = 4 + 4 + 1 + 1 + 2 + 8 + 4;
constexpr size_t kStringCount = 9;
constexpr size_t kFieldOverhead = 2 + 4;
constexpr size_t kMaxFieldName = 0xFFFF;

void stringSlots(RequestHead& head, std::string_view* (&slots)[kStringCount]) {
    slots[0] = &head.method;
    slots[1] = &head.target;
    slots[2] = &head.path;
    slots[3] = &head.query;
    slots[4] = &head.version;
    slots[5] = &head.remote;
    slots[6] = &head.local_address;
    slots[7] = &head.server_name;
    slots[8] = &head.app_target;
}

class Writer {
  public:
    explicit Writer(std::span<std::byte> out) : out_(out) {}
    template <typename T>
    void put(T value) {
        // Little-endian hosts only (x86-64, AArch64), like the rest of the
        // shared-memory layout; both ends run on the same machine.
        std::memcpy(out_.data() + position_, &value, sizeof value);
        position_ += sizeof value;
    }
    void putBytes(std::string_view bytes) {
        // memcpy from an empty view's null pointer is undefined even for 0 bytes.
        if (!bytes.empty()) {
            std::memcpy(out_.data() + position_, bytes.data(), bytes.size());
        }
        position_ += bytes.size();
    }
    size_t position() const { return position_; }

  private:
    std::span<std::byte> out_;
    size_t position_ = 0;
};

class Reader {
  public:
    explicit Reader(std::span<const std::byte> in) : in_(in) {}
    template <typename T>
    bool get(T& value) {
        if (in_.size() - position_ < sizeof value) {
            return false;
        }
        std::memcpy(&value, in_.data() + position_, sizeof value);
        position_ += sizeof value;
        return true;
    }
    bool getBytes(size_t length, std::string_view& view) {
        if (in_.size() - position_ < length) {
            return false;
        }
        view = {reinterpret_cast<const char*>(in_.data() + position_), length};
        position_ += length;
        return true;
    }
    size_t remaining() const { return in_.size() - position_; }

  private:
    std::span<const std::byte> in_;
    size_t position_ = 0;
};

}  // namespace

size_t encodedSize(const RequestHead& head) {
    size_t size = kFixedBytes + kStringCount * 4;
    size += head.method.size() + head.target.size() + head.path.size() + head.query.size() +
            head.version.size() + head.remote.size() + head.local_address.size() +
            head.server_name.size() + head.app_target.size();
    for (const HeaderField& field : head.fields) {
        size += kFieldOverhead + field.name.size() + field.value.size();
    }
    return size;
}

Result<size_t> encodeHead(const RequestHead& head, std::span<std::byte> out) {
    size_t size = encodedSize(head);
    if (size > kMaxHeadBytes || size > out.size()) {
        return Error{Errc::TooLarge, 0, "request head too large"};
    }
    for (const HeaderField& field : head.fields) {
        if (field.name.size() > kMaxFieldName) {
            return Error{Errc::TooLarge, 0, "header name too long"};
        }
    }
    Writer writer(out);
    writer.put(kHeadMagic);
    writer.put(static_cast<uint32_t>(size));
    writer.put(static_cast<uint8_t>(head.tls ? kHeadFlagTls : 0));
    writer.put(uint8_t{0});
    writer.put(head.local_port);
    writer.put(head.content_length);
    writer.put(static_cast<uint32_t>(head.fields.size()));
    const std::string_view strings[kStringCount] = {
        head.method, head.target,        head.path,        head.query,     head.version,
        head.remote, head.local_address, head.server_name, head.app_target};
    for (std::string_view string : strings) {
        writer.put(static_cast<uint32_t>(string.size()));
        writer.putBytes(string);
    }
    for (const HeaderField& field : head.fields) {
        writer.put(static_cast<uint16_t>(field.name.size()));
        writer.put(static_cast<uint32_t>(field.value.size()));
        writer.putBytes(field.name);
        writer.putBytes(field.value);
    }
    return writer.position();
}

Result<RequestHead> decodeHead(std::span<const std::byte> in) {
    const Error corrupt{Errc::Corrupt, 0, "malformed request head"};
    Reader reader(in);
    uint32_t magic = 0;
    uint32_t total = 0;
    uint8_t flags = 0;
    uint8_t reserved = 0;
    RequestHead head;
    uint32_t field_count = 0;
    if (!reader.get(magic) || magic != kHeadMagic || !reader.get(total) || total != in.size() ||
        total > kMaxHeadBytes || !reader.get(flags) || !reader.get(reserved) ||
        !reader.get(head.local_port) || !reader.get(head.content_length) ||
        !reader.get(field_count)) {
        return corrupt;
    }
    head.tls = (flags & kHeadFlagTls) != 0;
    std::string_view* slots[kStringCount];
    stringSlots(head, slots);
    for (std::string_view* slot : slots) {
        uint32_t length = 0;
        if (!reader.get(length) || !reader.getBytes(length, *slot)) {
            return corrupt;
        }
    }
    // The count is bounded by the bytes left before anything is reserved, so
    // a lying count cannot make us allocate more than the input justifies.
    if (field_count > reader.remaining() / kFieldOverhead) {
        return corrupt;
    }
    head.fields.reserve(field_count);
    for (uint32_t index = 0; index < field_count; ++index) {
        uint16_t name_length = 0;
        uint32_t value_length = 0;
        HeaderField field;
        if (!reader.get(name_length) || !reader.get(value_length) ||
            !reader.getBytes(name_length, field.name) ||
            !reader.getBytes(value_length, field.value) || field.name.empty()) {
            return corrupt;
        }
        head.fields.push_back(field);
    }
    if (reader.remaining() != 0) {
        return corrupt;
    }
    return head;
}

Result<void> storeHead(SegmentPool& pool, const RequestHead& head,
                       std::span<const std::byte> preread, RequestDescriptor& descriptor) {
    size_t head_size = encodedSize(head);
    size_t total = head_size + preread.size();
    size_t chunk_size = pool.geometry().chunk_size;
    size_t chunks = (total + chunk_size - 1) / chunk_size;
    if (head_size > kMaxHeadBytes || chunks > kMaxHeadChunks) {
        return Error{Errc::TooLarge, 0, "request head and preread exceed the head chunks"};
    }
    // Encode once into a contiguous buffer when the head spans chunks; the
    // common case (one chunk) encodes in place.
    std::vector<std::byte> spill;
    descriptor.head_chunk_count = 0;
    auto undo = [&] {
        for (uint32_t index = 0; index < descriptor.head_chunk_count; ++index) {
            pool.table().release(descriptor.head_chunks[index]);
        }
        descriptor.head_chunk_count = 0;
    };
    for (size_t index = 0; index < chunks; ++index) {
        auto chunk = pool.allocate();
        if (!chunk) {
            undo();
            return chunk.error();
        }
        descriptor.head_chunks[descriptor.head_chunk_count++] = *chunk;
    }
    auto chunkBytes = [&](uint32_t index) {
        const ChunkRef& ref = descriptor.head_chunks[index];
        return pool.table().find(ref.segment)->chunk(ref.index);
    };
    if (chunks == 1) {
        auto encoded = encodeHead(head, chunkBytes(0));
        if (!encoded) {
            undo();
            return encoded.error();
        }
        if (!preread.empty()) {
            std::memcpy(chunkBytes(0).data() + head_size, preread.data(), preread.size());
        }
    } else {
        spill.resize(total);
        auto encoded = encodeHead(head, spill);
        if (!encoded) {
            undo();
            return encoded.error();
        }
        if (!preread.empty()) {
            std::memcpy(spill.data() + head_size, preread.data(), preread.size());
        }
        for (uint32_t index = 0; index < chunks; ++index) {
            size_t offset = index * chunk_size;
            std::memcpy(chunkBytes(index).data(), spill.data() + offset,
                        std::min(chunk_size, total - offset));
        }
    }
    for (uint32_t index = 0; index < chunks; ++index) {
        size_t offset = index * chunk_size;
        descriptor.head_chunks[index].length =
            static_cast<uint32_t>(std::min(chunk_size, total - offset));
    }
    descriptor.head_length = static_cast<uint32_t>(head_size);
    descriptor.preread_length = static_cast<uint32_t>(preread.size());
    return {};
}

namespace {

// The descriptor's chunks, validated: in range, and their lengths adding up
// to head plus preread.
Result<std::vector<std::span<const std::byte>>> headSpans(const SegmentTable& segments,
                                                          const RequestDescriptor& descriptor) {
    if (descriptor.head_chunk_count > kMaxHeadChunks || descriptor.head_length > kMaxHeadBytes) {
        return Error{Errc::Corrupt, 0, "request descriptor out of range"};
    }
    std::vector<std::span<const std::byte>> spans;
    uint64_t total = 0;
    for (uint32_t index = 0; index < descriptor.head_chunk_count; ++index) {
        const ChunkRef& ref = descriptor.head_chunks[index];
        if (!segments.validRef(ref)) {
            return Error{Errc::Corrupt, 0, "request head chunk out of range"};
        }
        spans.push_back(segments.data(ref));
        total += ref.length;
    }
    if (total != uint64_t{descriptor.head_length} + descriptor.preread_length) {
        return Error{Errc::Corrupt, 0, "request head lengths do not add up"};
    }
    return spans;
}

// Copies `length` bytes starting at `offset` of the concatenated spans.
void gather(const std::vector<std::span<const std::byte>>& spans, size_t offset, size_t length,
            std::byte* out) {
    for (const auto& span : spans) {
        if (length == 0) {
            break;
        }
        if (offset >= span.size()) {
            offset -= span.size();
            continue;
        }
        size_t take = std::min(length, span.size() - offset);
        std::memcpy(out, span.data() + offset, take);
        out += take;
        length -= take;
        offset = 0;
    }
}

}  // namespace

Result<RequestHead> loadHead(const SegmentTable& router_segments,
                             const RequestDescriptor& descriptor, std::vector<std::byte>& storage) {
    auto spans = headSpans(router_segments, descriptor);
    if (!spans) {
        return spans.error();
    }
    if (!spans->empty() && (*spans)[0].size() >= descriptor.head_length) {
        return decodeHead((*spans)[0].first(descriptor.head_length));
    }
    storage.resize(descriptor.head_length);
    gather(*spans, 0, descriptor.head_length, storage.data());
    return decodeHead(storage);
}

Result<void> loadPreread(const SegmentTable& router_segments, const RequestDescriptor& descriptor,
                         std::vector<std::byte>& out) {
    auto spans = headSpans(router_segments, descriptor);
    if (!spans) {
        return spans.error();
    }
    out.resize(descriptor.preread_length);
    gather(*spans, descriptor.head_length, descriptor.preread_length, out.data());
    return {};
}

void releaseHead(SegmentTable& router_segments, const RequestDescriptor& descriptor) {
    uint32_t count = std::min(descriptor.head_chunk_count, kMaxHeadChunks);
    for (uint32_t index = 0; index < count; ++index) {
        router_segments.release(descriptor.head_chunks[index]);
    }
}

}  // namespace canopy::transport
