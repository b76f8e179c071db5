#include "core/cli/config_edit.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <variant>

#include "core/base/file.h"
#include "core/base/unique_fd.h"
#include "core/cli/config_path.h"
#include "core/cli/exit_codes.h"
#include "core/cli/output.h"
#include "core/json/value.h"

namespace canopy::cli {
namespace {

const char* environmentOr(const char* name, const char* fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : fallback;
}

// The file being edited: removed at the end unless kept, so that a user's
// refused changes are never lost.
class EditFile {
  public:
    static Result<EditFile> create(const std::string& directory, std::string_view contents) {
        std::string path = directory + "/canopy-edit-XXXXXX.json";
        // The .json suffix lets editors pick their JSON mode.
        UniqueFd fd(::mkstemps(path.data(), 5));
        if (!fd) {
            return systemError(fmt::format("cannot create a file in {}", directory));
        }
        EditFile file(path);
        auto written = file.write(contents);
        if (!written) {
            return written.error();
        }
        return file;
    }

    EditFile(EditFile&& other) noexcept
        : path_(std::move(other.path_)), keep_(std::exchange(other.keep_, true)) {}
    EditFile(const EditFile&) = delete;
    EditFile& operator=(const EditFile&) = delete;
    EditFile& operator=(EditFile&&) = delete;
    ~EditFile() {
        if (!keep_) {
            ::unlink(path_.c_str());
        }
    }

    const std::string& path() const { return path_; }
    void keep() { keep_ = true; }

    Result<void> write(std::string_view contents) const {
        std::ofstream stream(path_, std::ios::binary | std::ios::trunc);
        stream << contents;
        stream.close();
        if (!stream) {
            return systemError(fmt::format("cannot write {}", path_));
        }
        return {};
    }

    Result<std::string> read() const { return readFile(path_); }

  private:
    explicit EditFile(std::string path) : path_(std::move(path)) {}

    std::string path_;
    bool keep_ = false;
};

// Runs the editor through the shell, so "code --wait" or "emacs -nw" work,
// and waits for it. While it runs, canopy ignores the terminal's SIGINT and
// SIGQUIT as system() does: they are the editor's to handle.
Result<int> runEditor(const std::string& editor, const std::string& path) {
    std::cout.flush();
    std::cerr.flush();
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    struct sigaction old_interrupt {};
    struct sigaction old_quit {};
    ::sigaction(SIGINT, &ignore, &old_interrupt);
    ::sigaction(SIGQUIT, &ignore, &old_quit);
    pid_t child = ::fork();
    if (child == 0) {
        ::sigaction(SIGINT, &old_interrupt, nullptr);
        ::sigaction(SIGQUIT, &old_quit, nullptr);
        std::string command = editor + " \"$@\"";
        ::execl("/bin/sh", "sh", "-c", command.c_str(), editor.c_str(), path.c_str(), nullptr);
        ::_exit(127);
    }
    int status = 0;
    Result<int> outcome = 0;
    if (child < 0) {
        outcome = systemError("fork()");
    } else {
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        outcome = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    ::sigaction(SIGINT, &old_interrupt, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    return outcome;
}

// Saved unchanged, or changed only in layout or comments: nothing to apply.
bool sameConfiguration(const std::string& edited, const std::string& original) {
    if (edited == original) {
        return true;
    }
    auto before = json::parse(original);
    auto after = json::parse(edited);
    const auto* before_value = std::get_if<json::Value>(&before);
    const auto* after_value = std::get_if<json::Value>(&after);
    // serialize() keeps member order and number spelling, which the API
    // echoes: a reordering is a change.
    return before_value != nullptr && after_value != nullptr &&
           json::serialize(*before_value) == json::serialize(*after_value);
}

bool blank(std::string_view text) {
    return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Asks a yes/no question on the terminal; Enter means yes, end of input no.
bool ask(const CommandContext& context, const EditSettings& settings, std::string_view question) {
    if (!settings.interactive) {
        return false;
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
        context.err << question << " [Y/n] " << std::flush;
        std::string line;
        if (!std::getline(context.in, line)) {
            context.err << "\n";
            return false;
        }
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.pop_back();
        }
        if (line.empty() || line == "y" || line == "Y" || line == "yes") {
            return true;
        }
        if (line == "n" || line == "N" || line == "no") {
            return false;
        }
    }
    return false;
}

int keepAndFail(const CommandContext& context, EditFile& file, int code) {
    file.keep();
    context.err << "canopy: your changes are kept in " << file.path() << "\n";
    return code;
}

// Whether to start over from the configuration as it is now (after a 412),
// or finish with an exit code.
using Round = std::variant<int, std::monostate>;
constexpr std::monostate kStartOver{};

Round editRound(const CommandContext& context, const std::string& target,
                const EditSettings& settings) {
    auto current = exchange(context, {"GET", target, {}, {}});
    if (!current) {
        return unreachable(context, current.error());
    }
    if (current->status != 200) {
        reportApiError(context.err, *current);
        return kExitApiError;
    }
    const std::string original = withUnixLineEnds(current->body);
    const std::string* etag = current->header("etag");
    Headers headers;
    if (etag != nullptr) {
        headers.emplace_back("If-Match", *etag);
    }
    auto created = EditFile::create(settings.temp_dir, original);
    if (!created) {
        context.err << "canopy: " << created.error().message << "\n";
        return kExitApiError;
    }
    EditFile& file = *created;

    for (;;) {
        auto status = runEditor(settings.editor, file.path());
        if (!status || *status != 0) {
            context.err << fmt::format(
                "canopy: the editor ({}) failed: {}; nothing was applied\n", settings.editor,
                status ? fmt::format("exit status {}", *status) : status.error().message);
            auto edited = file.read();
            if (edited && !sameConfiguration(*edited, original)) {
                return keepAndFail(context, file, kExitApiError);
            }
            return kExitApiError;
        }
        auto edited = file.read();
        if (!edited) {
            context.err << "canopy: " << edited.error().message << "\n";
            return kExitApiError;
        }
        if (sameConfiguration(*edited, original)) {
            context.err << "canopy: no changes; nothing was applied\n";
            return kExitSuccess;
        }
        if (blank(*edited)) {
            context.err << "canopy: the file is empty: edit cancelled, nothing was applied\n";
            return kExitApiError;
        }

        auto answer = exchange(context, {"PUT", target, *edited, headers});
        if (!answer) {
            unreachable(context, answer.error());
            return keepAndFail(context, file, kExitUnreachable);
        }
        if (answer->status == 200) {
            context.out << withUnixLineEnds(answer->body);
            return kExitSuccess;
        }
        if (answer->status == 412) {
            context.err << "canopy: the configuration changed while you were editing it; "
                           "nothing was applied\n";
            file.keep();
            if (!ask(context, settings, "Edit again, starting from the new configuration?")) {
                return keepAndFail(context, file, kExitApiError);
            }
            context.err << "canopy: your previous version is kept in " << file.path() << "\n";
            return kStartOver;
        }
        reportApiError(context.err, *answer, *edited);
        if (!ask(context, settings, "Edit again?")) {
            return keepAndFail(context, file, kExitApiError);
        }
    }
}

}  // namespace

EditSettings editSettingsFromEnvironment() {
    EditSettings settings;
    settings.editor = environmentOr("VISUAL", environmentOr("EDITOR", "vi"));
    settings.temp_dir = environmentOr("TMPDIR", "/tmp");
    settings.interactive = ::isatty(STDIN_FILENO) == 1;
    return settings;
}

int configEdit(const CommandContext& context, std::string_view path, const EditSettings& settings) {
    auto target = requestTarget("/config", path);
    if (!target) {
        context.err << "canopy: " << target.error().message << "\n";
        return kExitUsage;
    }
    for (;;) {
        Round round = editRound(context, *target, settings);
        if (const int* code = std::get_if<int>(&round)) {
            return *code;
        }
    }
}

}  // namespace canopy::cli
