#include "ruby_runtime.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "canopy/module_log.hpp"
#include "rack_objects.h"

namespace canopy::ruby {

namespace {

canopy::ModuleLog module_log("ruby");

VALUE canopy_module = Qnil;
ID id_load_hooks = 0;
ID id_load_application = 0;
ID id_run_hooks = 0;
ID id_describe_exception = 0;

// Ruby code of the Canopy module: hook registration (a hooks file is
// evaluated inside the module, so its bare `on_worker_boot do ... end`
// calls land here), building the application, exception text, and
// rack.errors. The hot paths (env, rack.input, the response) are C.
constexpr const char* kPrelude = R"RUBY(
module Canopy
  HOOK_NAMES = %i[on_worker_boot on_worker_shutdown on_thread_boot on_thread_shutdown].freeze
  @hooks = HOOK_NAMES.to_h { |name| [name, []] }

  class << self
    HOOK_NAMES.each do |name|
      define_method(name) do |&block|
        raise ArgumentError, "#{name} needs a block" unless block
        @hooks[name] << block
        nil
      end
    end

    def run_hooks(name)
      @hooks.fetch(name).each(&:call)
      nil
    end

    def load_hooks(path)
      module_eval(File.read(path), path, 1)
      nil
    end

    def load_application(script)
      require "rack"
      built = Rack::Builder.parse_file(script)
      # Rack 2 returns [app, options], Rack 3 the application.
      app = built.is_a?(Array) ? built.first : built
      unless app.respond_to?(:call)
        raise TypeError, "#{script} did not build a Rack application: " \
                         "#{app.inspect[0, 80]} does not respond to call"
      end
      @application = app
    end

    def rack_version
      defined?(Rack::VERSION) && Rack::VERSION.is_a?(Array) ? Rack::VERSION : [1, 3]
    end

    def describe_exception(error)
      lines = ["#{error.class}: #{error.message}"]
      (error.backtrace || []).each { |line| lines << "    from #{line}" }
      lines.join("\n")
    end
  end

  # rack.errors: each line goes to the Canopy log.
  class ErrorStream
    def initialize
      @pending = String.new(encoding: Encoding::BINARY)
      @lock = Mutex.new
    end

    def write(*texts)
      texts.sum do |text|
        bytes = text.to_s.b
        @lock.synchronize do
          @pending << bytes
          while (newline = @pending.index("\n"))
            Canopy.log_error_line(@pending.slice!(0, newline + 1).chomp)
          end
        end
        bytes.bytesize
      end
    end

    def puts(*items)
      items = [""] if items.empty?
      items.flatten.each do |item|
        text = item.to_s
        write(text.end_with?("\n") ? text : "#{text}\n")
      end
      nil
    end

    def print(*items)
      items.each { |item| write(item.to_s) }
      nil
    end

    def <<(text)
      write(text)
      self
    end

    def flush
      @lock.synchronize do
        Canopy.log_error_line(@pending.slice!(0, @pending.bytesize)) unless @pending.empty?
      end
      self
    end

    def close
      flush
      nil
    end

    def sync
      true
    end

    def sync=(_value); end
  end
end
)RUBY";

// Canopy.log_error_line(text): one line to the log, as an error.
void logBytes(const char* data, long length) {
    logLine(CANOPY_LOG_ERROR, std::string(data, static_cast<size_t>(std::max(length, 0L))));
}

VALUE logErrorLine(VALUE /*self*/, VALUE text) {
    StringValue(text);
    logBytes(RSTRING_PTR(text), RSTRING_LEN(text));
    return Qnil;
}

struct PreludeArguments {
    const char* load_directory;  // NULL: none
};

VALUE definePrelude(VALUE argument) {
    const auto* arguments = reinterpret_cast<const PreludeArguments*>(argument);
    ruby_script("canopy");
    rb_eval_string(kPrelude);
    canopy_module = rb_const_get(rb_cObject, rb_intern("Canopy"));
    rb_gc_register_mark_object(canopy_module);
    rb_define_module_function(canopy_module, "log_error_line", RUBY_METHOD_FUNC(logErrorLine), 1);
    id_load_hooks = rb_intern("load_hooks");
    id_load_application = rb_intern("load_application");
    id_run_hooks = rb_intern("run_hooks");
    id_describe_exception = rb_intern("describe_exception");
    defineRackClasses(canopy_module);
    if (arguments->load_directory != nullptr) {
        VALUE load_path = rb_gv_get("$LOAD_PATH");
        rb_ary_unshift(load_path, rb_str_new_cstr(arguments->load_directory));
    }
    return Qnil;
}

struct CallArguments {
    VALUE receiver;
    ID method;
    int argc;
    const VALUE* argv;
};

VALUE callMethod(VALUE argument) {
    const auto* call = reinterpret_cast<const CallArguments*>(argument);
    return rb_funcallv(call->receiver, call->method, call->argc, call->argv);
}

// Canopy.<method>(text) with a String (or a Symbol) made from C text, all
// of it under rb_protect.
struct TextCallArguments {
    ID method;
    const char* text;
    size_t length;
    bool symbol;
};

VALUE callWithText(VALUE argument) {
    const auto* call = reinterpret_cast<const TextCallArguments*>(argument);
    VALUE text = rb_str_new(call->text, static_cast<long>(call->length));
    VALUE value = call->symbol ? rb_str_intern(text) : text;
    return rb_funcallv(canopy_module, call->method, 1, &value);
}

// Takes the pending exception after rb_protect failed.
std::string takeException(int state) {
    VALUE exception = rb_errinfo();
    rb_set_errinfo(Qnil);
    if (NIL_P(exception)) {
        // A throw or break that escaped, not an exception.
        return "Ruby unwound the stack without an exception (state " + std::to_string(state) + ")";
    }
    return describeException(exception);
}

std::string absoluteFrom(const std::string& base, const std::string& path) {
    std::filesystem::path result(path);
    if (result.is_relative()) {
        result = std::filesystem::path(base) / result;
    }
    return result.lexically_normal().string();
}

}  // namespace

std::string parseOptions(const char* json, size_t length, RubyOptions& options) {
    nlohmann::json conf;
    try {
        conf = nlohmann::json::parse(json, json + length, nullptr, true, true);
    } catch (const std::exception& error) {
        return std::string("the application's configuration is not valid JSON: ") + error.what();
    }
    if (!conf.is_object()) {
        return "the application's configuration is not a JSON object";
    }
    auto text = [&](const char* key) -> const std::string* {
        auto found = conf.find(key);
        return found != conf.end() && found->is_string() ? found->get_ptr<const std::string*>()
                                                         : nullptr;
    };
    std::error_code error;
    std::string here = std::filesystem::current_path(error).string();
    if (error) {
        return "cannot find the current directory: " + error.message();
    }
    // setup() runs before the host changes to working_directory, start()
    // after: in both, relative paths are taken from it.
    std::string base = here;
    if (const std::string* directory = text("working_directory");
        directory != nullptr && !directory->empty()) {
        base = absoluteFrom(here, *directory);
        options.working_directory = base;
    }
    const std::string* script = text("script");
    if (script == nullptr || script->empty()) {
        return "the application has no \"script\" (its config.ru)";
    }
    options.script = absoluteFrom(base, *script);
    if (const std::string* hooks = text("hooks"); hooks != nullptr && !hooks->empty()) {
        options.hooks = absoluteFrom(base, *hooks);
    }
    if (auto threads = conf.find("threads"); threads != conf.end() && threads->is_number()) {
        options.threads = threads->get<int>();
    }
    for (const std::string* path : {&options.script, &options.hooks}) {
        if (!path->empty() && ::access(path->c_str(), R_OK) != 0) {
            return std::string("the ") + (path == &options.script ? "script" : "hooks file") +
                   " \"" + *path + "\" cannot be read: " + std::strerror(errno);
        }
    }
    return {};
}

void setLogTask(canopy_task_t* task) {
    module_log.attach(task);
}

void logLine(canopy_log_level_t level, const std::string& message) {
    module_log.line(level, message);
}

void logLines(canopy_log_level_t level, const std::string& text) {
    module_log.lines(level, text);
}

std::string startRuby(const RubyOptions& options) {
    if (int rc = ruby_setup(); rc != 0) {
        return "cannot start the Ruby VM (ruby_setup returned " + std::to_string(rc) + ")";
    }
    // As the ruby command starts: rubygems, RUBYOPT, the locale's encodings.
    // "-e ''" compiles an empty program, which is never run.
    char program[] = "canopy";
    char option[] = "-e";
    char empty[] = "";
    char* arguments[] = {program, option, empty};
    void* node = ruby_options(3, arguments);
    int status = 0;
    if (!ruby_executable_node(node, &status)) {
        std::string problem = takeException(status);
        logLines(CANOPY_LOG_ERROR, problem);
        return "cannot start the Ruby VM: " + firstLine(problem);
    }
    PreludeArguments arguments_of_prelude{
        options.working_directory.empty() ? nullptr : options.working_directory.c_str()};
    std::string problem;
    if (protectedRun(definePrelude, reinterpret_cast<VALUE>(&arguments_of_prelude), &problem) ==
        Qundef) {
        logLines(CANOPY_LOG_ERROR, problem);
        return "cannot prepare the Canopy module in Ruby: " + firstLine(problem);
    }
    return {};
}

VALUE loadApplication(const RubyOptions& options, std::string& problem) {
    std::string error;
    if (!options.hooks.empty()) {
        TextCallArguments call{id_load_hooks, options.hooks.data(), options.hooks.size(), false};
        if (protectedRun(callWithText, reinterpret_cast<VALUE>(&call), &error) == Qundef) {
            logLines(CANOPY_LOG_ERROR, error);
            problem = "cannot load the hooks file \"" + options.hooks + "\": " + firstLine(error);
            return Qnil;
        }
    }
    TextCallArguments call{id_load_application, options.script.data(), options.script.size(),
                           false};
    VALUE application = protectedRun(callWithText, reinterpret_cast<VALUE>(&call), &error);
    if (application == Qundef) {
        logLines(CANOPY_LOG_ERROR, error);
        problem =
            "cannot load the application from \"" + options.script + "\": " + firstLine(error);
        return Qnil;
    }
    return application;  // kept alive by the Canopy module (@application)
}

bool runHooks(const char* name) {
    std::string error;
    TextCallArguments call{id_run_hooks, name, std::strlen(name), true};
    if (protectedRun(callWithText, reinterpret_cast<VALUE>(&call), &error) == Qundef) {
        logLines(CANOPY_LOG_ERROR, error);
        logLine(CANOPY_LOG_ERROR, std::string("the ") + name + " hook failed: " + firstLine(error));
        return false;
    }
    return true;
}

VALUE protectedCall(VALUE receiver, ID method, int argc, const VALUE* argv, std::string* error) {
    CallArguments call{receiver, method, argc, argv};
    return protectedRun(callMethod, reinterpret_cast<VALUE>(&call), error);
}

VALUE protectedRun(VALUE (*function)(VALUE), VALUE argument, std::string* error) {
    int state = 0;
    VALUE result = rb_protect(function, argument, &state);
    if (state == 0) {
        return result;
    }
    std::string text = takeException(state);
    if (error != nullptr) {
        *error = std::move(text);
    }
    return Qundef;
}

std::string describeException(VALUE exception) {
    int state = 0;
    CallArguments call{canopy_module, id_describe_exception, 1, &exception};
    VALUE text = NIL_P(canopy_module)
                     ? Qnil
                     : rb_protect(callMethod, reinterpret_cast<VALUE>(&call), &state);
    if (state != 0 || !RB_TYPE_P(text, T_STRING)) {
        rb_set_errinfo(Qnil);
        VALUE message = rb_protect(rb_obj_as_string, exception, &state);
        if (state != 0 || !RB_TYPE_P(message, T_STRING)) {
            rb_set_errinfo(Qnil);
            return "(an exception that cannot be shown)";
        }
        text = message;
    }
    return std::string(RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text)));
}

std::string firstLine(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

VALUE canopyModule() {
    return canopy_module;
}

}  // namespace canopy::ruby
