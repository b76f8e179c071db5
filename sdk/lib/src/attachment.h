#pragma once

// The attachment: how an application process reaches the router. The host
// writes it as text into CANOPY_APP_INIT (or hands the text to
// canopy_app_init); the format is documented in <canopy/app.h> and
// docs/sdk.md. The fake router formats it with formatAttachment().

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "canopy/transport/channel.h"
#include "canopy/transport/result.h"
#include "canopy/transport/segment.h"

namespace canopy::app {

constexpr uint32_t kAttachmentVersion = 1;

struct ConsumerSlot {
    uint32_t index = 0;  // the consumer index in the channel
    int event_fd = -1;   // its doorbell's eventfd
};

struct Attachment {
    int socket_fd = -1;
    int channel_fd = -1;
    int queue_fd = -1;
    int router_fd = -1;
    std::vector<ConsumerSlot> consumers;
    transport::ChannelGeometry channel;
    transport::SegmentGeometry segments;
    size_t shm_budget = transport::SegmentPool::kDefaultBudget;
    uint64_t request_limit = 0;  // 0: none
};

// Parses and validates; Invalid with a static reason for anything missing
// or out of range, TooLarge never. Unsupported versions give Invalid with
// detail "unsupported attachment version" (the caller maps it).
transport::Result<Attachment> parseAttachment(std::string_view text);
std::string formatAttachment(const Attachment& attachment);

}  // namespace canopy::app
