#pragma once

// The MIME type of a file from its name (config-schema §3.5 and
// settings.http.static.mime_types): a built-in table of the common web
// types, extended or overridden by the configuration.

#include <map>
#include <string>
#include <string_view>

namespace canopy::http {

class MimeTypes {
  public:
    // The built-in table.
    MimeTypes();

    // Maps `extension` to `type`, replacing what it mapped to before.
    // `extension` is ".suffix" or a whole file name without a dot
    // ("README"); case does not matter.
    void add(std::string_view type, std::string_view extension);

    // The type of the file named by `path` (only its last segment counts):
    // the whole name first, then its last ".suffix"; "" when unknown.
    // The view lives as long as this table is not changed.
    std::string_view typeOf(std::string_view path) const;

  private:
    std::map<std::string, std::string, std::less<>> types_;  // lower-case key → type
};

}  // namespace canopy::http
