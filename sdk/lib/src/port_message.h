#pragma once

// The port messages between the router and an application process are
// defined once, in the transport; libcanopy uses them by their short names.

#include "canopy/transport/port_message.h"

namespace canopy::app {

using transport::PortMessage;
using transport::PortMessageType;
using transport::receivePortMessage;
using transport::sendPortMessage;

}  // namespace canopy::app
