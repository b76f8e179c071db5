#include "core/base/process_title.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

extern char** environ;

namespace canopy {
namespace {

char* title_area = nullptr;
size_t title_area_size = 0;

}  // namespace

void initProcessTitle(int argc, char** argv) {
    if (argc <= 0 || argv == nullptr || argv[0] == nullptr) {
        return;
    }
    char* begin = argv[0];
    char* end = argv[0] + std::strlen(argv[0]) + 1;
    for (int index = 1; index < argc; ++index) {
        if (argv[index] == end) {
            end = argv[index] + std::strlen(argv[index]) + 1;
        }
    }
    size_t environment_count = 0;
    while (environ != nullptr && environ[environment_count] != nullptr) {
        ++environment_count;
    }
    // The environment strings usually follow argv; they become part of the
    // area once their copies live on the heap.
    char** moved_environment = new char*[environment_count + 1];
    for (size_t index = 0; index < environment_count; ++index) {
        if (environ[index] == end) {
            end = environ[index] + std::strlen(environ[index]) + 1;
        }
        moved_environment[index] = ::strdup(environ[index]);
    }
    moved_environment[environment_count] = nullptr;
    environ = moved_environment;
    // argv[] entries past argv[0] would point into the overwritten area.
    for (int index = 1; index < argc; ++index) {
        argv[index] = ::strdup(argv[index]);
    }
    std::string program = argv[0];
    argv[0] = ::strdup(program.c_str());
    title_area = begin;
    title_area_size = static_cast<size_t>(end - begin);
}

void setProcessTitle(std::string_view title) {
    if (title_area != nullptr && title_area_size > 1) {
        size_t length = std::min(title.size(), title_area_size - 1);
        std::memcpy(title_area, title.data(), length);
        std::memset(title_area + length, 0, title_area_size - length);
    }
    std::string short_name(title.substr(0, 15));
    ::prctl(PR_SET_NAME, short_name.c_str(), 0, 0, 0);
}

}  // namespace canopy
