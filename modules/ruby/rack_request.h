// Serving one request with a Rack application: the env, the call, the
// response (status, headers, a body that is iterated, sent by file or
// called with a stream), errors.
#pragma once

#include <canopy/app.h>
#include <ruby.h>

#include <string>

namespace canopy::ruby {

// Builds what every request of the process shares (the env's fixed keys,
// frozen key strings) around the application. Empty string or why not.
std::string prepareRack(VALUE application, bool multithread);

// Runs the application for `request` and finishes the request (always:
// canopy_request_done is called before this returns). The calling thread
// holds the GVL; it is released around every wait in the SDK.
void serveRequest(canopy_request_t* request);

}  // namespace canopy::ruby
