/* A libstrophe client that the interoperability tests drive against Sigil:
 * it logs in, prints the bound JID and the mechanism-independent outcome,
 * and disconnects.
 *
 *   strophe_login HOST PORT starttls|direct CAFILE [-j JID] [-c CERT -k KEY] [-p PASSWORD]
 *
 * Without -j the JID is the certificate's id-on-xmppAddr, as libstrophe
 * reads it (so the test sees whether libstrophe finds it).
 *
 * Output: "bound JID" on success, exit 0; "failed ERROR" and exit 1
 * otherwise; exit 2 on bad arguments. STROPHE_DEBUG=1 logs the XML.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>

static int outcome = 1;

static void on_connection(xmpp_conn_t *conn, xmpp_conn_event_t status, int error,
                          xmpp_stream_error_t *stream_error, void *userdata)
{
    xmpp_ctx_t *ctx = userdata;
    (void)stream_error;
    if (status == XMPP_CONN_CONNECT) {
        printf("bound %s\n", xmpp_conn_get_bound_jid(conn));
        fflush(stdout);
        outcome = 0;
        xmpp_disconnect(conn);
        return;
    }
    if (outcome != 0) {
        printf("failed %d\n", error);
        fflush(stdout);
    }
    xmpp_stop(ctx);
}

int main(int argc, char **argv)
{
    const char *jid = NULL, *cert = NULL, *key = NULL, *password = NULL;
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT starttls|direct CAFILE [-j JID] [-c CERT -k KEY] [-p PASSWORD]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    unsigned short port = (unsigned short)atoi(argv[2]);
    const char *mode = argv[3];
    const char *cafile = argv[4];
    for (int i = 5; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-j")) jid = argv[i + 1];
        else if (!strcmp(argv[i], "-c")) cert = argv[i + 1];
        else if (!strcmp(argv[i], "-k")) key = argv[i + 1];
        else if (!strcmp(argv[i], "-p")) password = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }

    xmpp_initialize();
    xmpp_log_t *log = getenv("STROPHE_DEBUG") ? xmpp_get_default_logger(XMPP_LEVEL_DEBUG) : NULL;
    xmpp_ctx_t *ctx = xmpp_ctx_new(NULL, log);
    xmpp_conn_t *conn = xmpp_conn_new(ctx);
    long flags = !strcmp(mode, "direct") ? XMPP_CONN_FLAG_LEGACY_SSL : XMPP_CONN_FLAG_MANDATORY_TLS;
    xmpp_conn_set_flags(conn, flags | XMPP_CONN_FLAG_DISABLE_SM);
    xmpp_conn_set_cafile(conn, cafile);
    if (cert != NULL) {
        xmpp_conn_set_client_cert(conn, cert, key);
    }
    if (jid == NULL && cert != NULL && xmpp_conn_cert_xmppaddr_num(conn) == 1) {
        char *addr = xmpp_conn_cert_xmppaddr(conn, 0);
        printf("certificate names %s\n", addr);
        xmpp_conn_set_jid(conn, addr);
        xmpp_free(ctx, addr);
    } else if (jid != NULL) {
        xmpp_conn_set_jid(conn, jid);
    } else {
        printf("failed no-jid\n");
        return 1;
    }
    if (password != NULL) {
        xmpp_conn_set_pass(conn, password);
    }
    if (xmpp_connect_client(conn, host, port, on_connection, ctx) != XMPP_EOK) {
        printf("failed connect\n");
        return 1;
    }
    xmpp_run(ctx);
    xmpp_conn_release(conn);
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    return outcome;
}
