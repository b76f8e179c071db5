#include "core/cli/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

#include "core/json/value.h"

namespace canopy::cli {
namespace {

std::string scalarText(const json::Value& value) {
    if (value.isString()) {
        return value.asString();
    }
    return json::serialize(value);
}

// The line `line` (1-based) of `text`, without its line end.
std::string_view lineOf(std::string_view text, size_t line) {
    size_t start = 0;
    for (size_t current = 1; current < line; ++current) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            return {};
        }
        start = end + 1;
    }
    std::string_view rest = text.substr(start);
    rest = rest.substr(0, rest.find('\n'));
    if (!rest.empty() && rest.back() == '\r') {
        rest.remove_suffix(1);
    }
    return rest;
}

}  // namespace

std::string withUnixLineEnds(std::string_view text) {
    std::string converted;
    converted.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            continue;
        }
        converted += text[i];
    }
    return converted;
}

std::string formatTable(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()));
        for (size_t column = 0; column < row.size(); ++column) {
            widths[column] = std::max(widths[column], row[column].size());
        }
    }
    std::string table;
    for (const auto& row : rows) {
        std::string line;
        for (size_t column = 0; column < row.size(); ++column) {
            line += row[column];
            if (column + 1 < row.size()) {
                line.append(widths[column] - row[column].size() + 2, ' ');
            }
        }
        table += line;
        table += '\n';
    }
    return table;
}

void reportApiError(std::ostream& err, const HttpAnswer& answer, std::string_view sent) {
    auto parsed = json::parse(answer.body);
    const json::Value* value = std::get_if<json::Value>(&parsed);
    const json::Value* title = value != nullptr ? value->find("error") : nullptr;
    if (title == nullptr) {
        // Not the API's envelope (a proxy in between, another server).
        err << fmt::format("canopy: HTTP {} {}\n", answer.status, answer.reason);
        if (!answer.body.empty()) {
            err << withUnixLineEnds(answer.body);
            if (answer.body.back() != '\n') {
                err << '\n';
            }
        }
        return;
    }
    err << fmt::format("canopy: {} (HTTP {})\n", scalarText(*title), answer.status);
    if (const json::Value* detail = value->find("detail")) {
        err << fmt::format("  detail: {}\n", scalarText(*detail));
    }
    if (const json::Value* path = value->find("path")) {
        err << fmt::format("  path: {}\n", scalarText(*path));
    }
    const json::Value* location = value->find("location");
    if (location == nullptr || !location->isObject()) {
        return;
    }
    const json::Value* line = location->find("line");
    const json::Value* column = location->find("column");
    const json::Value* offset = location->find("offset");
    if (line != nullptr && column != nullptr && line->isInteger() && column->isInteger()) {
        err << fmt::format("  at line {}, column {}\n", scalarText(*line), scalarText(*column));
        auto line_number = static_cast<size_t>(line->asNumber().integer().value_or(0));
        auto column_number = static_cast<size_t>(column->asNumber().integer().value_or(0));
        std::string_view text = lineOf(sent, line_number);
        if (!text.empty() && column_number >= 1) {
            // The caret counts characters; tabs are kept so it lines up.
            std::string pointer;
            size_t characters = 0;
            for (size_t i = 0; i < text.size() && characters + 1 < column_number; ++i) {
                auto byte = static_cast<unsigned char>(text[i]);
                if ((byte & 0xC0) == 0x80) {
                    continue;  // a UTF-8 continuation byte
                }
                pointer += text[i] == '\t' ? '\t' : ' ';
                ++characters;
            }
            err << "    " << text << "\n    " << pointer << "^\n";
        }
    } else if (offset != nullptr) {
        err << fmt::format("  at byte {}\n", scalarText(*offset));
    }
}

}  // namespace canopy::cli
