#pragma once

// Process titles as `ps` shows them ("canopy: router"). Linux shows a
// process's argv memory, so the title is written over argv and the
// environment strings that follow it; the environment is moved to the heap
// first.

#include <string_view>

namespace canopy {

// Call once from main() before anything reads argv or environ afterwards.
void initProcessTitle(int argc, char** argv);

// Sets the title shown by ps (truncated to the space argv and environ had),
// and the short thread name shown by top. Without initProcessTitle only the
// thread name changes.
void setProcessTitle(std::string_view title);

}  // namespace canopy
