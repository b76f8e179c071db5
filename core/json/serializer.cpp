// Output byte for byte as Unit prints it (nxt_conf_json_print): clients and
// tests diff our answers against Unit's, so layout details matter here.

#include <string>

#include "core/json/value.h"

namespace canopy::json {

// Minimal escaping: '"', '\\' and control characters; everything else,
// non-ASCII UTF-8 included, is copied as is. Unit writes the \u00XX form
// with an uppercase hex digit, so we do too.
void appendQuoted(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (byte < 0x20) {
                    static constexpr char kHex[] = "0123456789ABCDEF";
                    out += "\\u00";
                    out += kHex[byte >> 4];
                    out += kHex[byte & 0xF];
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

namespace {

constexpr std::string_view kLineEnd = "\r\n";


bool isNonEmptyContainer(const Value& value) {
    return (value.isObject() && !value.asObject().empty()) ||
           (value.isArray() && !value.asArray().empty());
}

class Writer {
  public:
    explicit Writer(bool pretty) : pretty_(pretty) {}

    void write(const Value& value, size_t level) {
        switch (value.type()) {
            case Type::Null:
                out_ += "null";
                return;
            case Type::Boolean:
                out_ += value.asBool() ? "true" : "false";
                return;
            case Type::Number:
                // The text as received (or as formatted when built in C++), so a
                // GET echoes "1e3" or "2.0" exactly as the user PUT it.
                out_ += value.asNumber().text;
                return;
            case Type::String:
                appendQuoted(out_, value.asString());
                return;
            case Type::Array:
                writeArray(value.asArray(), level);
                return;
            case Type::Object:
                writeObject(value.asObject(), level);
                return;
        }
    }

    std::string take() { return std::move(out_); }

  private:
    void newLine(size_t level) {
        if (pretty_) {
            out_ += kLineEnd;
            out_.append(level, '\t');
        }
    }

    void writeArray(const Array& elements, size_t level) {
        if (elements.empty()) {
            out_ += "[]";
            return;
        }
        // Unlike object members, array elements get no blank line between
        // them, even when they are objects (Unit resets its "more space" flag
        // after every comma in an array).
        out_ += '[';
        for (size_t i = 0; i < elements.size(); ++i) {
            if (i != 0) {
                out_ += ',';
            }
            newLine(level + 1);
            write(elements[i], level + 1);
        }
        newLine(level);
        out_ += ']';
    }

    void writeObject(const Object& members, size_t level) {
        if (members.empty()) {
            out_ += "{}";
            return;
        }
        out_ += '{';
        for (size_t i = 0; i < members.size(); ++i) {
            if (i != 0) {
                out_ += ',';
                // A blank line separates a non-empty object or array from the
                // next member; none before the closing brace.
                if (pretty_ && isNonEmptyContainer(members[i - 1].value)) {
                    out_ += kLineEnd;
                }
            }
            newLine(level + 1);
            appendQuoted(out_, members[i].key);
            out_ += pretty_ ? ": " : ":";
            write(members[i].value, level + 1);
        }
        newLine(level);
        out_ += '}';
    }

    bool pretty_;
    std::string out_;
};

}  // namespace

std::string serialize(const Value& value) {
    Writer writer(false);
    writer.write(value, 0);
    return writer.take();
}

std::string serializePretty(const Value& value) {
    Writer writer(true);
    writer.write(value, 0);
    std::string out = writer.take();
    out += kLineEnd;
    return out;
}

}  // namespace canopy::json
