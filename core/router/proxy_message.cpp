#include "core/router/proxy_message.h"

#include <fmt/format.h>

namespace canopy {
namespace {

bool equalsIgnoringCase(std::string_view left, std::string_view right) {
    if (left.size() != right.size()) {
        return false;
    }
    for (size_t index = 0; index < left.size(); ++index) {
        char a = left[index];
        char b = right[index];
        a = (a >= 'A' && a <= 'Z') ? static_cast<char>(a - 'A' + 'a') : a;
        b = (b >= 'A' && b <= 'Z') ? static_cast<char>(b - 'A' + 'a') : b;
        if (a != b) {
            return false;
        }
    }
    return true;
}

// RFC 9110 §7.6.1 and the fields the proxy writes itself.
bool hopByHop(std::string_view name) {
    for (std::string_view hop :
         {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
          "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}) {
        if (equalsIgnoringCase(name, hop)) {
            return true;
        }
    }
    return false;
}

// The Connection field's tokens, from every Connection field.
std::vector<std::string_view> connectionTokens(std::span<const http::HeaderField> fields) {
    std::vector<std::string_view> tokens;
    for (const auto& field : fields) {
        if (!equalsIgnoringCase(field.name, "Connection")) {
            continue;
        }
        std::string_view rest = field.value;
        while (!rest.empty()) {
            size_t comma = rest.find(',');
            std::string_view token = rest.substr(0, comma);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
                token.remove_prefix(1);
            }
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
                token.remove_suffix(1);
            }
            if (!token.empty()) {
                tokens.push_back(token);
            }
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
    }
    return tokens;
}

bool named(std::string_view name, std::span<const std::string_view> tokens) {
    for (std::string_view token : tokens) {
        if (equalsIgnoringCase(name, token)) {
            return true;
        }
    }
    return false;
}

}  // namespace

void appendUpstreamRequestHead(std::string& out, const UpstreamRequest& request) {
    out.append(request.method);
    out += ' ';
    out.append(request.target);
    out += " HTTP/1.1\r\n";
    std::vector<std::string_view> connection = connectionTokens(request.fields);
    bool host_seen = false;
    for (const auto& field : request.fields) {
        if (hopByHop(field.name) || named(field.name, connection) ||
            equalsIgnoringCase(field.name, "Content-Length") ||
            equalsIgnoringCase(field.name, "Expect") ||  // the router answers 100-continue
            equalsIgnoringCase(field.name, "X-Forwarded-For")) {
            continue;
        }
        host_seen = host_seen || equalsIgnoringCase(field.name, "Host");
        out.append(field.name);
        out += ": ";
        out.append(field.value);
        out += "\r\n";
    }
    if (!host_seen) {
        out += "Host: ";
        out.append(request.host_fallback);
        out += "\r\n";
    }
    if (!request.forwarded_for.empty()) {
        out += "X-Forwarded-For: ";
        for (size_t index = 0; index < request.forwarded_for.size(); ++index) {
            if (index > 0) {
                out += ", ";
            }
            request.forwarded_for[index].appendText(out);
        }
        out += "\r\n";
    }
    switch (request.framing) {
        case UpstreamBodyFraming::ContentLength:
            fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n",
                           request.content_length);
            break;
        case UpstreamBodyFraming::Chunked:
            out += "Transfer-Encoding: chunked\r\n";
            break;
        case UpstreamBodyFraming::None:
            break;
    }
    if (request.websocket) {
        out += "Connection: upgrade\r\nUpgrade: websocket\r\n";
    }
    out += "\r\n";
}

bool droppedResponseField(std::string_view name, std::span<const std::string_view> connection) {
    return hopByHop(name) || named(name, connection) ||
           equalsIgnoringCase(name, "Content-Length") || equalsIgnoringCase(name, "Date") ||
           equalsIgnoringCase(name, "Server");
}

std::string rewrittenTarget(std::string_view path, std::string_view query, bool has_query) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string target;
    target.reserve(path.size() + query.size() + 1);
    for (char c : path) {
        auto byte = static_cast<unsigned char>(c);
        bool keep = (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
                    (byte >= '0' && byte <= '9') ||
                    std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
        if (keep) {
            target += c;
        } else {
            target += '%';
            target += kHex[byte >> 4];
            target += kHex[byte & 15];
        }
    }
    if (has_query) {
        target += '?';
        target.append(query);
    }
    return target;
}

}  // namespace canopy
