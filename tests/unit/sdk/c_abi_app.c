/* A complete app written in C11 against <canopy/app.h>: compiling this file
 * as C proves the header is C-clean. It answers "METHOD PATH BODY" with 201. */

#include <stdio.h>
#include <string.h>

#include "canopy/app.h"

int canopy_c_abi_run(const char* attachment);

static void handle(canopy_request_t* request) {
    char body[256];
    size_t used = 0;
    canopy_str_t method = canopy_request_method(request);
    canopy_str_t path = canopy_request_path(request);
    used += (size_t)snprintf(body, sizeof body, "%.*s %.*s ", (int)method.length, method.data,
                             (int)path.length, path.data);
    for (;;) {
        size_t got = 0;
        if (canopy_request_read(request, body + used, sizeof body - used, &got) != CANOPY_OK ||
            got == 0) {
            break;
        }
        used += got;
    }
    if (canopy_response_init(request, 201, 2) != CANOPY_OK ||
        canopy_response_add_header(request, "Content-Type", 12, "text/plain", 10) != CANOPY_OK ||
        canopy_response_add_header(request, "X-Language", 10, "C11", 3) != CANOPY_OK ||
        canopy_response_write(request, body, used) != CANOPY_OK) {
        canopy_request_done(request, CANOPY_ERROR);
        return;
    }
    canopy_request_done(request, CANOPY_OK);
}

int canopy_c_abi_run(const char* attachment) {
    canopy_app_init_t init;
    canopy_app_t* app = NULL;
    int rc;
    memset(&init, 0, sizeof init);
    init.size = sizeof init;
    init.abi_major = CANOPY_APP_ABI_MAJOR;
    init.abi_minor = CANOPY_APP_ABI_MINOR;
    init.request_handler = handle;
    init.attachment = attachment;
    if (canopy_app_init(&init, &app) != CANOPY_OK) {
        return 1;
    }
    rc = canopy_run(canopy_app_main_context(app));
    canopy_app_free(app);
    return rc == CANOPY_OK ? 0 : 2;
}
