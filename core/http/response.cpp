#include "core/http/response.h"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "core/base/build_info.h"

namespace canopy::http {
namespace {

void appendNumber(std::string& out, uint64_t value) {
    char digits[24];
    auto result = std::to_chars(digits, digits + sizeof(digits), value);
    out.append(digits, result.ptr);
}

bool statusHasNoBody(int status) {
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace

std::string_view reasonPhrase(int status) {
    struct Reason {
        int status;
        std::string_view phrase;
    };
    // Sorted by status for the binary search.
    static constexpr Reason kReasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {203, "Non-Authoritative Information"},
        {204, "No Content"},
        {205, "Reset Content"},
        {206, "Partial Content"},
        {300, "Multiple Choices"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {421, "Misdirected Request"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {451, "Unavailable For Legal Reasons"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    const Reason* found =
        std::lower_bound(std::begin(kReasons), std::end(kReasons), status,
                         [](const Reason& reason, int wanted) { return reason.status < wanted; });
    return found != std::end(kReasons) && found->status == status ? found->phrase
                                                                  : std::string_view();
}

std::string serverHeaderValue(bool server_version) {
    std::string value = "Canopy";
    if (server_version) {
        value += '/';
        value += build::kVersion;
    }
    return value;
}

std::string formatHttpDate(std::time_t time) {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm parts{};
    gmtime_r(&time, &parts);
    // Written by hand rather than with strftime: strftime follows the locale.
    char text[30];
    auto two = [](char* at, int value) {
        at[0] = static_cast<char>('0' + value / 10);
        at[1] = static_cast<char>('0' + value % 10);
    };
    const char* day = kDays[parts.tm_wday];
    const char* month = kMonths[parts.tm_mon];
    int year = parts.tm_year + 1900;
    text[0] = day[0], text[1] = day[1], text[2] = day[2], text[3] = ',', text[4] = ' ';
    two(text + 5, parts.tm_mday);
    text[7] = ' ';
    text[8] = month[0], text[9] = month[1], text[10] = month[2], text[11] = ' ';
    two(text + 12, (year / 100) % 100);
    two(text + 14, year % 100);
    text[16] = ' ';
    two(text + 17, parts.tm_hour);
    text[19] = ':';
    two(text + 20, parts.tm_min);
    text[22] = ':';
    two(text + 23, parts.tm_sec);
    text[25] = ' ', text[26] = 'G', text[27] = 'M', text[28] = 'T';
    return std::string(text, 29);
}

std::string_view currentHttpDate() {
    struct Cache {
        std::time_t second = -1;
        std::string text;
    };
    thread_local Cache cache;
    std::time_t now = std::time(nullptr);
    if (now != cache.second) {
        cache.second = now;
        cache.text = formatHttpDate(now);
    }
    return cache.text;
}

bool appendResponseHead(std::string& out, const ResponseHead& head) {
    ResponseFraming framing = head.framing;
    if (statusHasNoBody(head.status)) {
        framing = ResponseFraming::NoBody;
    } else if (framing == ResponseFraming::Chunked && head.http10_client) {
        framing = ResponseFraming::CloseDelimited;
    }
    bool keep_alive = head.keep_alive && framing != ResponseFraming::CloseDelimited;

    out.append("HTTP/1.1 ");
    appendNumber(out, static_cast<uint64_t>(head.status));
    out.push_back(' ');
    out.append(reasonPhrase(head.status));
    out.append("\r\n");
    if (!head.server.empty()) {
        out.append("Server: ");
        out.append(head.server);
        out.append("\r\n");
    }
    out.append("Date: ");
    out.append(currentHttpDate());
    out.append("\r\n");
    switch (framing) {
        case ResponseFraming::ContentLength:
            out.append("Content-Length: ");
            appendNumber(out, head.content_length);
            out.append("\r\n");
            break;
        case ResponseFraming::Chunked:
            out.append("Transfer-Encoding: chunked\r\n");
            break;
        case ResponseFraming::CloseDelimited:
        case ResponseFraming::NoBody:
            break;
    }
    if (head.status != 101) {  // a 101 carries "Connection: upgrade" from the engine
        if (!keep_alive) {
            out.append("Connection: close\r\n");
        } else if (head.http10_client) {
            out.append("Connection: keep-alive\r\n");
        }
    }
    for (const HeaderField& field : head.fields) {
        out.append(field.name);
        out.append(": ");
        out.append(field.value);
        out.append("\r\n");
    }
    out.append("\r\n");
    return keep_alive;
}

std::string errorPage(int status) {
    std::string code = std::to_string(status);
    return "<!DOCTYPE html><title>Error " + code + "</title><p>Error " + code + ".\r\n";
}

bool appendErrorResponse(std::string& out, int status, std::string_view server, bool keep_alive,
                         bool http10_client, bool head_request) {
    std::string page = errorPage(status);
    static constexpr HeaderField kHtml[] = {{"Content-Type", "text/html"}};
    ResponseHead head;
    head.status = status;
    head.framing = ResponseFraming::ContentLength;
    head.content_length = page.size();
    head.keep_alive = keep_alive;
    head.http10_client = http10_client;
    head.server = server;
    head.fields = kHtml;
    bool stays_open = appendResponseHead(out, head);
    if (!head_request) {
        out.append(page);
    }
    return stays_open;
}

ChunkHeader chunkHeader(size_t data_size) {
    ChunkHeader header;
    auto result = std::to_chars(header.bytes, header.bytes + 16, data_size, 16);
    result.ptr[0] = '\r';
    result.ptr[1] = '\n';
    header.size = static_cast<uint8_t>(result.ptr + 2 - header.bytes);
    return header;
}

void appendChunk(std::string& out, std::string_view data) {
    if (data.empty()) {
        return;
    }
    out.append(chunkHeader(data.size()).view());
    out.append(data);
    out.append("\r\n");
}

}  // namespace canopy::http
