#include "core/http/mime_types.h"

#include <array>
#include <utility>

namespace canopy::http {
namespace {

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// Close to Unit's and nginx's tables: what browsers need to render a site.
constexpr std::array<std::pair<std::string_view, std::string_view>, 64> kBuiltIn{{
    {".html", "text/html"},
    {".htm", "text/html"},
    {".shtml", "text/html"},
    {".css", "text/css"},
    {".js", "text/javascript"},
    {".mjs", "text/javascript"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain"},
    {".md", "text/markdown"},
    {".csv", "text/csv"},
    {".xml", "text/xml"},
    {".xhtml", "application/xhtml+xml"},
    {".rss", "application/rss+xml"},
    {".atom", "application/atom+xml"},
    {".svg", "image/svg+xml"},
    {".svgz", "image/svg+xml"},
    {".png", "image/png"},
    {".apng", "image/apng"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".avif", "image/avif"},
    {".bmp", "image/bmp"},
    {".ico", "image/x-icon"},
    {".tif", "image/tiff"},
    {".tiff", "image/tiff"},
    {".woff", "font/woff"},
    {".woff2", "font/woff2"},
    {".ttf", "font/ttf"},
    {".otf", "font/otf"},
    {".eot", "application/vnd.ms-fontobject"},
    {".pdf", "application/pdf"},
    {".zip", "application/zip"},
    {".gz", "application/gzip"},
    {".tgz", "application/gzip"},
    {".bz2", "application/x-bzip2"},
    {".xz", "application/x-xz"},
    {".zst", "application/zstd"},
    {".tar", "application/x-tar"},
    {".7z", "application/x-7z-compressed"},
    {".rar", "application/vnd.rar"},
    {".wasm", "application/wasm"},
    {".bin", "application/octet-stream"},
    {".exe", "application/octet-stream"},
    {".iso", "application/octet-stream"},
    {".mp4", "video/mp4"},
    {".m4v", "video/mp4"},
    {".webm", "video/webm"},
    {".ogv", "video/ogg"},
    {".mov", "video/quicktime"},
    {".avi", "video/x-msvideo"},
    {".mkv", "video/x-matroska"},
    {".mp3", "audio/mpeg"},
    {".ogg", "audio/ogg"},
    {".oga", "audio/ogg"},
    {".wav", "audio/wav"},
    {".flac", "audio/flac"},
    {".m4a", "audio/mp4"},
    {".aac", "audio/aac"},
    {".opus", "audio/opus"},
    {".webmanifest", "application/manifest+json"},
    {".ics", "text/calendar"},
}};

}  // namespace

MimeTypes::MimeTypes() {
    for (const auto& [extension, type] : kBuiltIn) {
        types_.emplace(std::string(extension), std::string(type));
    }
}

void MimeTypes::add(std::string_view type, std::string_view extension) {
    types_.insert_or_assign(lowercase(extension), std::string(type));
}

std::string_view MimeTypes::typeOf(std::string_view path) const {
    size_t slash = path.rfind('/');
    std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (name.empty()) {
        return {};
    }
    if (auto found = types_.find(lowercase(name)); found != types_.end()) {
        return found->second;
    }
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0) {
        return {};  // ".bashrc" is a name, not an extension
    }
    if (auto found = types_.find(lowercase(name.substr(dot))); found != types_.end()) {
        return found->second;
    }
    return {};
}

}  // namespace canopy::http
