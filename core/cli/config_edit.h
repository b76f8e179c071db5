#pragma once

// `canopy config edit [PATH]`: the current JSON in $VISUAL/$EDITOR, applied
// on save with If-Match, and another round in the editor when the API
// refuses it — the kubectl-edit loop for canopyd.

#include <string>
#include <string_view>

#include "core/cli/commands.h"

namespace canopy::cli {

struct EditSettings {
    std::string editor;        // a shell command; the file's path is appended as "$1"
    std::string temp_dir;      // where the file being edited lives
    bool interactive = false;  // may ask "Edit again?" on context.in (a terminal)
};

// $VISUAL, else $EDITOR, else vi; $TMPDIR, else /tmp; a terminal on stdin.
EditSettings editSettingsFromEnvironment();

int configEdit(const CommandContext& context, std::string_view path, const EditSettings& settings);

}  // namespace canopy::cli
