// The Ruby side of the module: its options, starting the VM, entering Ruby
// only through rb_protect, logging, exceptions as text, and the hooks.
//
// Ruby reports errors with longjmp. A frame that Ruby may unwind must hold no
// C++ object with a destructor, so C++ code here reaches Ruby only through
// protectedCall() and the other functions below, whose Ruby part runs in
// plain functions under rb_protect.
#pragma once

#include <canopy/module.h>
#include <ruby.h>

#include <string>

namespace canopy::ruby {

// The application keys of modules/ruby/README.md, parsed and checked.
struct RubyOptions {
    std::string script;             // absolute path of the rackup file
    std::string hooks;              // absolute path, empty: none
    std::string working_directory;  // empty: canopyd's; on $LOAD_PATH when set
    int threads = 1;
};

// Parses the application's JSON object (validated against the schema).
// Relative paths are taken from working_directory (or the current
// directory). Returns an empty string, or why the keys cannot be used.
std::string parseOptions(const char* json, size_t length, RubyOptions& options);

// Where log lines go: the task of setup, then of start. Any thread.
void setLogTask(canopy_task_t* task);
void logLine(canopy_log_level_t level, const std::string& message);
// Logs a multi-line text one line at a time.
void logLines(canopy_log_level_t level, const std::string& text);

// Starts the VM on the calling (main) thread: ruby_setup, ruby_options
// (rubygems, RUBYOPT, encodings), the Canopy prelude (hooks, rack.errors),
// the module's C classes, working_directory on $LOAD_PATH. Empty string or
// why it failed.
std::string startRuby(const RubyOptions& options);

// Evaluates the hooks file (if any) and builds the application from the
// rackup file. Returns the application, or Qnil with `problem` filled (the
// backtrace is logged). The VM must be started.
VALUE loadApplication(const RubyOptions& options, std::string& problem);

// Runs the blocks registered for a hook (:on_worker_boot, ...); an exception
// is logged with its backtrace and false returned.
bool runHooks(const char* name);

// Calls receiver.method(*args) under rb_protect. Returns the result, or
// Qundef after an exception, whose description (class, message, backtrace)
// is put in *error when error is not null.
VALUE protectedCall(VALUE receiver, ID method, int argc, const VALUE* argv, std::string* error);

// Runs function(argument) under rb_protect; Qundef and the description of
// the exception in *error when it raised.
VALUE protectedRun(VALUE (*function)(VALUE), VALUE argument, std::string* error);

// "Class: message\n    from file:line..." of an exception object.
std::string describeException(VALUE exception);

// The first line of a text (the exception line of a description).
std::string firstLine(const std::string& text);

// The Canopy module (hooks, rack.errors, the C classes live in it).
VALUE canopyModule();

}  // namespace canopy::ruby
