#include "core/http/field_line.h"

#include "core/http/chars.h"

namespace canopy::http {

FieldLineError parseFieldLine(std::string_view line, FieldLine& out) {
    if (line.front() == ' ' || line.front() == '\t') {
        return FieldLineError::ObsFold;
    }
    size_t name_end = chars::span(line, chars::kToken);
    if (name_end == line.size()) {
        return FieldLineError::InvalidName;  // no colon at all
    }
    char stop = line[name_end];
    if (stop != ':') {
        // A name followed by whitespace and then a colon is the classic
        // smuggling vector of RFC 9112 §5.1; anything else is just not a name.
        if (stop == ' ' || stop == '\t') {
            size_t next = name_end;
            while (next < line.size() && (line[next] == ' ' || line[next] == '\t')) {
                ++next;
            }
            if (next < line.size() && line[next] == ':' && name_end > 0) {
                return FieldLineError::SpaceBeforeColon;
            }
        }
        return FieldLineError::InvalidName;
    }
    if (name_end == 0) {
        return FieldLineError::EmptyName;
    }
    std::string_view value = line.substr(name_end + 1);
    if (chars::span(value, chars::kFieldValue) != value.size()) {
        return FieldLineError::InvalidValue;
    }
    out.name = line.substr(0, name_end);
    out.value = chars::trimOws(value);
    return FieldLineError::None;
}

const char* describe(FieldLineError error) {
    switch (error) {
        case FieldLineError::None:
            return "no error";
        case FieldLineError::ObsFold:
            return "obsolete line folding in a field";
        case FieldLineError::EmptyName:
            return "empty field name";
        case FieldLineError::InvalidName:
            return "invalid field name";
        case FieldLineError::SpaceBeforeColon:
            return "whitespace between field name and colon";
        case FieldLineError::InvalidValue:
            return "control character in a field value";
    }
    return "invalid field line";
}

}  // namespace canopy::http
