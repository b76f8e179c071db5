#include "core/json/path.h"

#include <charconv>
#include <system_error>

#include "core/base/hex.h"

namespace canopy::json {

namespace {

// The byte a "%XX" at `offset` stands for, or -1 when it is not a valid escape.
int escapedByte(std::string_view text, size_t offset) {
    if (offset + 2 >= text.size()) {
        return -1;
    }
    int high = hexDigitValue(text[offset + 1]);
    int low = hexDigitValue(text[offset + 2]);
    if (high < 0 || low < 0) {
        return -1;
    }
    return high * 16 + low;
}

std::optional<std::string> percentDecode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int byte = escapedByte(text, i);
        if (byte < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(byte);
        i += 2;
    }
    return out;
}

Value* lookupMutable(Value& root, std::span<const std::string> path) {
    // Reuses the const walk: the tree is ours, only the pointer's constness
    // differs.
    return const_cast<Value*>(lookup(static_cast<const Value&>(root), path));
}

}  // namespace

std::variant<std::string, PathError> normalizeRequestPath(std::string_view raw_path) {
    if (raw_path.empty() || raw_path.front() != '/') {
        return PathError{PathErrorKind::MalformedUrl, "the path does not start with '/'"};
    }
    // Decode first: an encoded '.' ("%2E") takes part in dot segments as in
    // Unit. %2F and %25 stay encoded so that splitPath() sees them as data.
    std::string decoded;
    decoded.reserve(raw_path.size());
    for (size_t i = 0; i < raw_path.size(); ++i) {
        if (raw_path[i] != '%') {
            decoded += raw_path[i];
            continue;
        }
        int byte = escapedByte(raw_path, i);
        if (byte < 0) {
            return PathError{PathErrorKind::MalformedUrl, "a malformed '%' escape in the path"};
        }
        if (byte == 0) {
            return PathError{PathErrorKind::MalformedUrl, "an encoded NUL byte in the path"};
        }
        if (byte == '/' || byte == '%') {
            decoded.append(raw_path.substr(i, 3));
        } else {
            decoded += static_cast<char>(byte);
        }
        i += 2;
    }

    // Segments between slashes; empty ones are merged away. A "." or ".."
    // is resolved only when a '/' follows it, as in Unit's parser: a final
    // "." stays a literal (and later names no member).
    std::vector<std::string_view> kept;
    std::string_view rest = std::string_view(decoded).substr(1);
    while (!rest.empty()) {
        size_t slash = rest.find('/');
        std::string_view segment = rest.substr(0, slash);
        bool followed_by_slash = slash != std::string_view::npos;
        rest = followed_by_slash ? rest.substr(slash + 1) : std::string_view();
        if (segment.empty() || (followed_by_slash && segment == ".")) {
            continue;
        }
        if (followed_by_slash && segment == "..") {
            if (kept.empty()) {
                return PathError{PathErrorKind::MalformedUrl, "'..' above the root of the path"};
            }
            kept.pop_back();
            continue;
        }
        kept.push_back(segment);
    }
    bool trailing_slash = decoded.ends_with('/');
    std::string normalized = "/";
    for (size_t i = 0; i < kept.size(); ++i) {
        if (i != 0) {
            normalized += '/';
        }
        normalized.append(kept[i]);
    }
    if (trailing_slash && !kept.empty()) {
        normalized += '/';
    }
    return normalized;
}

std::variant<std::vector<std::string>, PathError> splitPath(std::string_view path) {
    if (path.empty() || path.front() != '/') {
        return PathError{PathErrorKind::EmptySegment, "the path does not start with '/'"};
    }
    path.remove_prefix(1);
    // One trailing '/' means nothing ("/config/" is "/config"); a second one
    // leaves an empty segment, which names nothing ("//" included).
    if (path.size() > 1 && path.ends_with('/')) {
        path.remove_suffix(1);
    }
    std::vector<std::string> segments;
    if (path.empty()) {
        return segments;
    }
    for (;;) {
        size_t slash = path.find('/');
        std::string_view segment = path.substr(0, slash);
        if (segment.empty()) {
            return PathError{PathErrorKind::EmptySegment, "an empty segment in the path"};
        }
        if (segment.size() > kMaxPathSegmentLength) {
            return PathError{
                PathErrorKind::SegmentTooLong,
                "a path segment longer than " + std::to_string(kMaxPathSegmentLength) + " bytes"};
        }
        std::optional<std::string> decoded = percentDecode(segment);
        if (!decoded) {
            return PathError{
                PathErrorKind::BadSegmentEscape,
                "a malformed '%' escape in the path segment \"" + std::string(segment) + "\""};
        }
        segments.push_back(std::move(*decoded));
        if (slash == std::string_view::npos) {
            break;
        }
        path.remove_prefix(slash + 1);
    }
    return segments;
}

std::optional<size_t> parseArrayIndex(std::string_view segment) {
    if (segment.empty()) {
        return std::nullopt;
    }
    for (char c : segment) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
    }
    size_t index = 0;
    auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
    if (error != std::errc() || end != segment.data() + segment.size()) {
        return std::nullopt;
    }
    return index;
}

const Value* lookup(const Value& root, std::span<const std::string> path) {
    const Value* node = &root;
    for (const std::string& segment : path) {
        if (node->isObject()) {
            node = node->find(segment);
        } else if (node->isArray()) {
            std::optional<size_t> index = parseArrayIndex(segment);
            const Array& elements = node->asArray();
            node = index && *index < elements.size() ? &elements[*index] : nullptr;
        } else {
            return nullptr;  // a scalar has no children
        }
        if (node == nullptr) {
            return nullptr;
        }
    }
    return node;
}

EditResult put(const Value& root, std::span<const std::string> path, Value value) {
    if (path.empty()) {
        return value;
    }
    std::span<const std::string> parent_path = path.first(path.size() - 1);
    const std::string& last = path.back();
    // Check on the input first so a failed edit copies nothing.
    const Value* parent = lookup(root, parent_path);
    if (parent == nullptr) {
        return EditError::NotFound;
    }
    std::optional<size_t> index;
    if (parent->isArray()) {
        index = parseArrayIndex(last);
        if (!index || *index > parent->asArray().size()) {
            return EditError::NotFound;
        }
    } else if (!parent->isObject()) {
        return EditError::NotFound;
    }

    Value tree = root;
    Value* target = lookupMutable(tree, parent_path);
    if (target->isObject()) {
        target->set(last, std::move(value));
    } else if (Array& elements = target->asArray(); *index == elements.size()) {
        elements.push_back(std::move(value));
    } else {
        elements[*index] = std::move(value);
    }
    return tree;
}

EditResult post(const Value& root, std::span<const std::string> path, Value value) {
    if (path.empty()) {
        return EditError::MethodNotAllowed;
    }
    const Value* target = lookup(root, path);
    if (target == nullptr) {
        return EditError::NotFound;
    }
    if (!target->isArray()) {
        return EditError::MethodNotAllowed;
    }
    Value tree = root;
    lookupMutable(tree, path)->asArray().push_back(std::move(value));
    return tree;
}

EditResult remove(const Value& root, std::span<const std::string> path) {
    if (path.empty()) {
        return Value::object();
    }
    if (lookup(root, path) == nullptr) {
        return EditError::NotFound;
    }
    std::span<const std::string> parent_path = path.first(path.size() - 1);
    const std::string& last = path.back();
    Value tree = root;
    Value* parent = lookupMutable(tree, parent_path);
    if (parent->isObject()) {
        parent->erase(last);
    } else {
        Array& elements = parent->asArray();
        elements.erase(elements.begin() + static_cast<std::ptrdiff_t>(*parseArrayIndex(last)));
    }
    return tree;
}

}  // namespace canopy::json
