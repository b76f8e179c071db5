#pragma once

// The application prototype kind (`canopy: "<app>" prototype`): one process
// per application generation, started on demand by main when the router
// asks for a worker. It loads the language module (or checks the external
// program), sets the application up once, and forks a worker for every
// AppProcessStart main forwards. See core/application/README.md.

#include "core/process/process_kind.h"

namespace canopy {

extern const ProcessKind kPrototypeKind;

}  // namespace canopy
