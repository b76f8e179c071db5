#include "core/router/app_call.h"

#include <boost/asio/post.hpp>

#include "core/base/log.h"
#include "core/router/applications.h"

namespace canopy {
namespace {

// Small complete answers are copied out of shared memory so the exchange
// ends in one hop; larger ones go to the client without a copy.
constexpr size_t kCopyLimit = 16 * 1024;

}  // namespace

// ---- connection thread ----

void AppCall::post(std::function<void(AppCall&)> work) {
    boost::asio::post(main_executor,
                      [self = shared_from_this(), work = std::move(work)] { work(*self); });
}

void AppCall::sendBody(std::string bytes, bool last) {
    post([bytes = std::move(bytes), last](AppCall& call) mutable {
        if (!bytes.empty()) {
            call.body_.push_back(std::move(bytes));
        }
        call.body_last_ = call.body_last_ || last;
        call.body_ack_owed_ = true;
        call.pump();
    });
}

void AppCall::released(size_t pieces) {
    post([pieces](AppCall& call) {
        if (call.exchange_) {
            for (size_t index = 0; index < pieces; ++index) {
                (void)call.exchange_->releasePiece();
            }
        }
        call.pieces_out_ -= std::min(call.pieces_out_, pieces);
        call.pump();
    });
}

void AppCall::sendFrame(uint8_t first, std::string payload) {
    post([first, payload = std::move(payload)](AppCall& call) mutable {
        call.frames_.emplace_back(first, std::move(payload));
        call.frame_ack_owed_ = true;
        call.pump();
    });
}

void AppCall::cancel() {
    post([](AppCall& call) {
        if (call.exchange_) {
            call.exchange_->abort();
        }
        call.pieces_out_ = 0;
        call.deliver = nullptr;
        call.finish();
    });
}

// ---- main thread ----

void AppCall::start(ApplicationPool& pool, std::unique_ptr<gateway::Exchange> exchange) {
    pool_ = &pool;
    exchange_ = std::move(exchange);
    body_finished_ = body_complete;
    pump();
}

void AppCall::failUnavailable(int status) {
    if (finished_) {
        return;
    }
    if (exchange_) {
        exchange_->abort();
    }
    if (deliver && !head_read_) {
        AppOutput output;
        output.error_status = status;
        deliver(std::move(output));
    } else if (deliver) {
        AppOutput output;
        output.broken = true;
        deliver(std::move(output));
    }
    pieces_out_ = 0;
    failed_ = true;
    finish();
}

void AppCall::timeOut() {
    failUnavailable(503);
}

void AppCall::finish() {
    if (finished_) {
        return;
    }
    if (pieces_out_ > 0) {
        return;  // the connection still writes from the exchange's memory
    }
    finished_ = true;
    ApplicationPool* pool = pool_;
    pool_ = nullptr;
    if (pool != nullptr) {
        pool->callFinished(*this);  // may drop the pool's reference to this call
    }
    exchange_.reset();
}

void AppCall::pump() {
    if (finished_ || !exchange_) {
        return;
    }
    gateway::Exchange& exchange = *exchange_;
    AppOutput output;
    bool any = false;

    // Request body, as credit allows.
    while (!body_.empty() && !body_finished_) {
        std::string& front = body_.front();
        auto taken = exchange.writeBody(
            std::as_bytes(std::span(front.data() + body_offset_, front.size() - body_offset_)));
        if (!taken) {
            if (taken.error().code == gateway::Errc::WouldBlock) {
                break;
            }
            // The app stopped reading (it answered already) or failed.
            body_.clear();
            body_offset_ = 0;
            body_finished_ = true;
            output.body_refused = true;
            any = true;
            break;
        }
        body_offset_ += *taken;
        if (body_offset_ == front.size()) {
            body_.pop_front();
            body_offset_ = 0;
        }
    }
    if (body_.empty() && body_last_ && !body_finished_) {
        auto finished = exchange.finishBody();
        if (finished || finished.error().code != gateway::Errc::WouldBlock) {
            body_finished_ = true;
        }
    }
    if (body_.empty() && body_ack_owed_ && !output.body_refused) {
        body_ack_owed_ = false;
        // After the last piece the connection reads no more body: an ack
        // would only cost it a wake-up.
        if (!body_last_) {
            output.body_wanted = true;
            any = true;
        }
    }

    auto failed = [&] {
        failed_ = true;
        if (!head_read_) {
            output.error_status = exchange.errorStatus();
        } else {
            output.broken = true;
        }
        any = true;
    };

    if (!head_read_) {
        auto head = exchange.readHead();
        if (head) {
            head_read_ = true;
            upgraded_ = (*head)->upgrade;
            output.head = **head;
            any = true;
        } else if (head.error().code != gateway::Errc::WouldBlock) {
            failed();
        }
    }

    if (head_read_ && !upgraded_ && !failed_ && pieces_out_ == 0 && !end_seen_) {
        size_t copied = 0;
        bool copy = true;
        while (true) {
            auto piece = exchange.nextPiece();
            if (!piece) {
                if (piece.error().code == gateway::Errc::Closed) {
                    end_seen_ = true;
                    output.end = true;
                    any = true;
                } else if (piece.error().code != gateway::Errc::WouldBlock) {
                    failed();
                }
                break;
            }
            copy = copy && !piece->isFile() && copied + piece->data.size() <= kCopyLimit;
            copied += piece->isFile() ? 0 : piece->data.size();
            output.pieces.push_back(*piece);
            any = true;
        }
        if (copy && output.end && !output.pieces.empty()) {
            // Whole and small: copy, give the credit back, end here.
            for (const auto& piece : output.pieces) {
                output.copied_body.append(reinterpret_cast<const char*>(piece.data.data()),
                                          piece.data.size());
                (void)exchange.releasePiece();
            }
            output.pieces.clear();
        }
        pieces_out_ = output.pieces.size();
    }

    if (upgraded_ && !failed_) {
        while (!frames_.empty()) {
            auto& [first, payload] = frames_.front();
            auto sent = exchange.sendFrame(first, std::as_bytes(std::span(payload)));
            if (!sent && sent.error().code == gateway::Errc::WouldBlock) {
                break;
            }
            frames_.pop_front();
        }
        if (frames_.empty() && frame_ack_owed_) {
            frame_ack_owed_ = false;
            output.frames_wanted = true;
            any = true;
        }
        while (true) {
            auto frame = exchange.nextFrame();
            if (!frame) {
                if (frame.error().code == gateway::Errc::Closed) {
                    end_seen_ = true;
                    output.end = true;
                    any = true;
                } else if (frame.error().code != gateway::Errc::WouldBlock) {
                    output.broken = true;
                    failed_ = true;
                    any = true;
                }
                break;
            }
            output.frames.push_back(std::move(*frame));
            any = true;
        }
    }

    bool done = failed_ || (end_seen_ && (upgraded_ || body_finished_ || output.body_refused));
    if (any && deliver) {
        deliver(std::move(output));
    }
    if (done || (end_seen_ && !upgraded_)) {
        // A response that ended before the body was read: the app no longer
        // wants it; the connection closes after the answer.
        finish();
    }
}

}  // namespace canopy
