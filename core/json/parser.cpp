// Recursive descent over Unit's JSON dialect. Every failure records the byte

#include "core/base/hex.h"
// offset where the problem is and stops; ParseError's line and column are
// computed from that offset afterwards, the way Unit computes them.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "core/json/utf8.h"
#include "core/json/value.h"

namespace canopy::json {

namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
// Unit's limits (control-api.md §5 and §11).
constexpr size_t kMaxNumberLength = 14;
constexpr size_t kMaxStringLength = 2147483647;  // 2^31-1 bytes
// Unit has no such limit; ours keeps a hostile body from exhausting the stack
// here and in every recursive walk of the tree later (copy, compare, print).
constexpr size_t kMaxDepth = 512;
// 2^63 as a double. A literal of at most 14 characters cannot lie between
// 2^63-1 and 2^63, so "magnitude >= 2^63" is exactly "beyond 2^63-1".
constexpr double kTwoTo63 = 9223372036854775808.0;

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

std::string hexByte(unsigned char byte) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "0x%02X", byte);
    return buffer;
}

void appendUtf8(std::string& out, uint32_t code_point) {
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

class Parser {
  public:
    explicit Parser(std::string_view text) : text_(text) {}

    // The whole text as exactly one value; nullopt after a failure.
    std::optional<Value> parseDocument() {
        Value result;
        if (!skipSpace() || !parseValue(result) || !skipSpace()) {
            return std::nullopt;
        }
        if (pos_ != text_.size()) {
            fail(pos_, "Unexpected " + describe(pos_) + " after the end of the JSON value");
            return std::nullopt;
        }
        return result;
    }

    size_t failureOffset() const { return failure_offset_; }
    std::string takeFailureDetail() { return std::move(failure_detail_); }

  private:
    bool fail(size_t offset, std::string detail) {
        failure_offset_ = offset;
        failure_detail_ = std::move(detail);
        return false;
    }

    bool atEnd() const { return pos_ >= text_.size(); }
    char peek() const { return text_[pos_]; }

    // What is at `offset`, for a detail: "character 'x'", "byte 0xC3", ...
    std::string describe(size_t offset) const {
        if (offset >= text_.size()) {
            return "end of the JSON payload";
        }
        auto byte = static_cast<unsigned char>(text_[offset]);
        if (byte >= 0x20 && byte < 0x7F) {
            return std::string("character '") + text_[offset] + "'";
        }
        if (size_t length = utf8SequenceLength(text_, offset); length > 1) {
            return "character '" + std::string(text_.substr(offset, length)) + "'";
        }
        return "byte " + hexByte(byte);
    }

    // Whitespace and comments, which Unit accepts wherever whitespace is.
    bool skipSpace() {
        while (!atEnd()) {
            char c = peek();
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                ++pos_;
                continue;
            }
            if (c != '/') {
                return true;
            }
            if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
                size_t end = text_.find('\n', pos_ + 2);
                pos_ = end == std::string_view::npos ? text_.size() : end + 1;
                continue;
            }
            if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '*') {
                size_t end = text_.find("*/", pos_ + 2);
                if (end == std::string_view::npos) {
                    return fail(pos_, "Unterminated comment: '/*' without a closing '*/'");
                }
                pos_ = end + 2;
                continue;
            }
            return fail(pos_, "Unexpected character '/': a comment starts with '//' or '/*'");
        }
        return true;
    }

    bool parseValue(Value& out) {
        if (atEnd()) {
            return fail(pos_, "Unexpected end of the JSON payload: a value was expected");
        }
        char c = peek();
        switch (c) {
            case '{':
                return parseObject(out);
            case '[':
                return parseArray(out);
            case '"': {
                std::string text;
                if (!parseString(text)) {
                    return false;
                }
                out = Value(std::move(text));
                return true;
            }
            case 't':
                return parseLiteral("true", Value(true), out);
            case 'f':
                return parseLiteral("false", Value(false), out);
            case 'n':
                return parseLiteral("null", Value(), out);
            default:
                if (c == '-' || isDigit(c)) {
                    return parseNumber(out);
                }
                return fail(pos_, "Unexpected " + describe(pos_) + ": a value was expected");
        }
    }

    bool enterContainer() {
        if (++depth_ > kMaxDepth) {
            return fail(pos_, "Nesting is too deep: at most " + std::to_string(kMaxDepth) +
                                  " levels of objects and arrays are supported");
        }
        return true;
    }

    bool parseObject(Value& out) {
        if (!enterContainer()) {
            return false;
        }
        ++pos_;  // '{'
        Object members;
        // Keys are copied: string_views into `members` would dangle when the
        // vector grows (short strings live inside the moved elements).
        std::unordered_set<std::string> keys;
        bool after_comma = false;
        for (;;) {
            if (!skipSpace()) {
                return false;
            }
            if (atEnd()) {
                return fail(pos_,
                            "Unexpected end of the JSON payload: a member name or '}' "
                            "was expected");
            }
            if (peek() == '}') {
                ++pos_;  // also closes after a trailing comma, which Unit accepts
                break;
            }
            if (peek() != '"') {
                return fail(pos_, "Unexpected " + describe(pos_) +
                                      (after_comma ? " after ','" : "") +
                                      ": a member name in double quotes or '}' was expected");
            }
            size_t key_offset = pos_;
            std::string key;
            if (!parseString(key)) {
                return false;
            }
            if (!keys.insert(key).second) {
                return fail(key_offset, "Duplicate object member \"" + key + "\"");
            }
            if (!skipSpace()) {
                return false;
            }
            if (atEnd() || peek() != ':') {
                return fail(pos_, "Unexpected " + describe(pos_) + " after the member name \"" +
                                      key + "\": ':' was expected");
            }
            ++pos_;
            Value value;
            if (!skipSpace() || !parseValue(value) || !skipSpace()) {
                return false;
            }
            members.push_back(Member{std::move(key), std::move(value)});
            if (!atEnd() && peek() == ',') {
                ++pos_;
                after_comma = true;
                continue;
            }
            if (!atEnd() && peek() == '}') {
                ++pos_;
                break;
            }
            return fail(pos_, "Unexpected " + describe(pos_) + " after the value of \"" +
                                  members.back().key + "\": ',' or '}' was expected");
        }
        --depth_;
        out = Value(std::move(members));
        return true;
    }

    bool parseArray(Value& out) {
        if (!enterContainer()) {
            return false;
        }
        ++pos_;  // '['
        Array elements;
        for (;;) {
            if (!skipSpace()) {
                return false;
            }
            if (atEnd()) {
                return fail(pos_,
                            "Unexpected end of the JSON payload: a value or ']' was expected");
            }
            if (peek() == ']') {
                ++pos_;  // also closes after a trailing comma, which Unit accepts
                break;
            }
            Value element;
            if (!parseValue(element) || !skipSpace()) {
                return false;
            }
            elements.push_back(std::move(element));
            if (!atEnd() && peek() == ',') {
                ++pos_;
                continue;
            }
            if (!atEnd() && peek() == ']') {
                ++pos_;
                break;
            }
            return fail(pos_, "Unexpected " + describe(pos_) +
                                  " after an array element: ',' or ']' was expected");
        }
        --depth_;
        out = Value(std::move(elements));
        return true;
    }

    bool parseLiteral(std::string_view word, Value value, Value& out) {
        if (text_.substr(pos_, word.size()) != word) {
            return fail(pos_, "Invalid literal: 'true', 'false' or 'null' was expected");
        }
        pos_ += word.size();
        out = std::move(value);
        return true;
    }

    // Reads four hex digits at `offset`; -1 when they are not there.
    long readHex4(size_t offset) const {
        if (offset + 4 > text_.size()) {
            return -1;
        }
        long result = 0;
        for (size_t i = 0; i < 4; ++i) {
            int digit = hexDigitValue(text_[offset + i]);
            if (digit < 0) {
                return -1;
            }
            result = result * 16 + digit;
        }
        return result;
    }

    bool parseEscape(std::string& out) {
        size_t start = pos_;  // the backslash
        char kind = text_[pos_ + 1];
        switch (kind) {
            case '"':
            case '\\':
            case '/':
                out += kind;
                pos_ += 2;
                return true;
            case 'b':
                out += '\b';
                pos_ += 2;
                return true;
            case 'f':
                out += '\f';
                pos_ += 2;
                return true;
            case 'n':
                out += '\n';
                pos_ += 2;
                return true;
            case 'r':
                out += '\r';
                pos_ += 2;
                return true;
            case 't':
                out += '\t';
                pos_ += 2;
                return true;
            case 'u':
                break;
            default:
                return fail(start, "Invalid escape sequence '\\" +
                                       std::string(text_.substr(pos_ + 1, 1)) + "' in a string");
        }
        long unit = readHex4(pos_ + 2);
        if (unit < 0) {
            return fail(start, "Invalid \\u escape: four hexadecimal digits are expected");
        }
        pos_ += 6;
        auto code_point = static_cast<uint32_t>(unit);
        if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
            return fail(start, "Invalid \\u escape: a low surrogate without a high surrogate");
        }
        if (code_point >= 0xD800 && code_point <= 0xDBFF) {
            long low = -1;
            if (pos_ + 1 < text_.size() && text_[pos_] == '\\' && text_[pos_ + 1] == 'u') {
                low = readHex4(pos_ + 2);
            }
            if (low < 0xDC00 || low > 0xDFFF) {
                return fail(start,
                            "Invalid \\u escape: a high surrogate must be followed by a low "
                            "surrogate");
            }
            pos_ += 6;
            code_point =
                0x10000 + ((code_point - 0xD800) << 10) + (static_cast<uint32_t>(low) - 0xDC00);
        }
        appendUtf8(out, code_point);
        return true;
    }

    bool parseString(std::string& out) {
        size_t start = pos_;
        ++pos_;  // opening quote
        for (;;) {
            if (atEnd()) {
                return fail(start, "Unterminated string: the closing '\"' is missing");
            }
            auto byte = static_cast<unsigned char>(peek());
            if (byte == '"') {
                ++pos_;
                break;
            }
            if (byte == '\\') {
                if (pos_ + 1 >= text_.size()) {
                    return fail(start, "Unterminated string: the closing '\"' is missing");
                }
                if (!parseEscape(out)) {
                    return false;
                }
                continue;
            }
            if (byte < 0x20) {
                return fail(pos_,
                            "Control character " + hexByte(byte) + " in a string must be escaped");
            }
            if (byte < 0x80) {
                out += static_cast<char>(byte);
                ++pos_;
                continue;
            }
            size_t length = utf8SequenceLength(text_, pos_);
            if (length == 0) {
                return fail(pos_, "Invalid UTF-8 in a string at " + describe(pos_));
            }
            out.append(text_.substr(pos_, length));
            pos_ += length;
        }
        if (out.size() > kMaxStringLength) {
            return fail(start, "The string is too long: at most 2147483647 bytes are supported");
        }
        return true;
    }

    bool parseNumber(Value& out) {
        size_t start = pos_;
        size_t p = pos_;
        auto digitAt = [&](size_t offset) {
            return offset < text_.size() && isDigit(text_[offset]);
        };
        if (text_[p] == '-') {
            ++p;
        }
        if (!digitAt(p)) {
            return fail(start, "Invalid number: a digit is expected after '-'");
        }
        if (text_[p] == '0' && digitAt(p + 1)) {
            return fail(start, "Invalid number: leading zeros are not allowed");
        }
        while (digitAt(p)) {
            ++p;
        }
        if (p < text_.size() && text_[p] == '.') {
            ++p;
            if (!digitAt(p)) {
                return fail(start, "Invalid number: a fraction needs at least one digit");
            }
            while (digitAt(p)) {
                ++p;
            }
        }
        if (p < text_.size() && (text_[p] == 'e' || text_[p] == 'E')) {
            ++p;
            if (p < text_.size() && (text_[p] == '+' || text_[p] == '-')) {
                ++p;
            }
            if (!digitAt(p)) {
                return fail(start, "Invalid number: an exponent needs at least one digit");
            }
            while (digitAt(p)) {
                ++p;
            }
        }
        std::string_view literal = text_.substr(start, p - start);
        if (literal.size() > kMaxNumberLength) {
            return fail(start, "The number is too long: at most " +
                                   std::to_string(kMaxNumberLength) + " characters are supported");
        }
        double value = 0;
        auto [end, error] = std::from_chars(literal.data(), literal.data() + literal.size(), value);
        // Underflow ("1e-400") is out of range too, as strtod's ERANGE is in Unit.
        if (error != std::errc() || end != literal.data() + literal.size() ||
            std::fabs(value) >= kTwoTo63) {
            return fail(start, "The number is out of range: its magnitude must not exceed 2^63-1");
        }
        pos_ = p;
        out = Value(Number{std::string(literal), value});
        return true;
    }

    std::string_view text_;
    size_t pos_ = 0;
    size_t depth_ = 0;
    size_t failure_offset_ = 0;
    std::string failure_detail_;
};

// Line and column as Unit computes them: lines counted by '\n', the column in
// UTF-8 characters from the start of the error's line. When that stretch is
// not valid UTF-8 a column means nothing, so both are left out.
void locate(std::string_view text, ParseError& error) {
    std::string_view prefix = text.substr(0, error.offset);
    size_t line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (prefix[i] == '\n') {
            ++line;
            line_start = i + 1;
        }
    }
    std::optional<size_t> characters = utf8Length(prefix.substr(line_start));
    if (characters) {
        error.line = line;
        error.column = *characters + 1;
    }
}

}  // namespace

std::variant<Value, ParseError> parse(std::string_view text) {
    if (text.starts_with(kByteOrderMark)) {
        text.remove_prefix(kByteOrderMark.size());
    }
    Parser parser(text);
    if (std::optional<Value> value = parser.parseDocument()) {
        return std::move(*value);
    }
    ParseError error;
    error.offset = parser.failureOffset();
    error.detail = parser.takeFailureDetail();
    locate(text, error);
    return error;
}

}  // namespace canopy::json
