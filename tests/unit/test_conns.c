/*
 * test_conns.c - the HTTP server's book of connections (src/api/conns.c):
 * counting per client address (IPv4, IPv6, IPv4-mapped IPv6), the excess
 * mark, no limit, and the reaper shutting down a connection whose request
 * is overdue or an excess one that stays silent (on socketpairs).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/conns.h"
#include "testutil.h"

static struct sockaddr_storage v4(const char *ip) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_per_address_counting(void **state) {
    (void)state;
    gx__conns *t;
    assert_int_equal(gx__conns_new(2, 0, &t), 0);
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");
    gx__conn *c1 = gx__conn_open(t, SA(a), -1), *c2 = gx__conn_open(t, SA(a), -1);
    gx__conn *other = gx__conn_open(t, SA(b), -1);
    assert_false(gx__conn_excess(t, c1, NULL));
    assert_false(gx__conn_excess(t, c2, NULL));
    assert_false(gx__conn_excess(t, other, NULL));
    unsigned n = 0;
    gx__conn *c3 = gx__conn_open(t, SA(a), -1);
    assert_true(gx__conn_excess(t, c3, &n));
    assert_int_equal(n, 3);
    gx__conn_close(t, c3);
    gx__conn_close(t, c1);
    gx__conn *c4 = gx__conn_open(t, SA(a), -1); /* 2 open again: within the limit */
    assert_false(gx__conn_excess(t, c4, NULL));
    gx__conn_close(t, c2);
    gx__conn_close(t, c4);
    gx__conn_close(t, other);
    gx__conn *c5 = gx__conn_open(t, SA(a), -1);
    assert_false(gx__conn_excess(t, c5, NULL));
    gx__conn_close(t, c5);
    gx__conn_close(t, NULL);
    gx__conns_free(t);
}

static void test_ipv6_and_mapped(void **state) {
    (void)state;
    gx__conns *t;
    assert_int_equal(gx__conns_new(1, 0, &t), 0);
    struct sockaddr_storage a = v4("192.0.2.7"), m = v6("::ffff:192.0.2.7"), x = v6("2001:db8::1"),
                            y = v6("2001:db8::2");
    gx__conn *ca = gx__conn_open(t, SA(a), -1);
    gx__conn *cm = gx__conn_open(t, SA(m), -1); /* the same client over IPv6 */
    gx__conn *cx = gx__conn_open(t, SA(x), -1), *cy = gx__conn_open(t, SA(y), -1);
    assert_false(gx__conn_excess(t, ca, NULL));
    assert_true(gx__conn_excess(t, cm, NULL));
    assert_false(gx__conn_excess(t, cx, NULL));
    assert_false(gx__conn_excess(t, cy, NULL));
    gx__conn *cx2 = gx__conn_open(t, SA(x), -1);
    assert_true(gx__conn_excess(t, cx2, NULL));
    gx__conn *none = gx__conn_open(t, NULL, -1); /* no address: not counted */
    assert_false(gx__conn_excess(t, none, NULL));
    gx__conn *ca_list[] = {ca, cm, cx, cy, cx2, none};
    for (int i = 0; i < 6; i++) gx__conn_close(t, ca_list[i]);
    gx__conns_free(t);
}

static void test_no_limit(void **state) {
    (void)state;
    gx__conns *t;
    assert_int_equal(gx__conns_new(0, 0, &t), 0);
    struct sockaddr_storage a = v4("127.0.0.1");
    gx__conn *c[200];
    for (int i = 0; i < 200; i++) {
        c[i] = gx__conn_open(t, SA(a), -1);
        assert_non_null(c[i]);
        assert_false(gx__conn_excess(t, c[i], NULL));
        assert_false(gx__conn_late(t, c[i])); /* no timeout: never late */
    }
    for (int i = 0; i < 200; i++) gx__conn_close(t, c[i]);
    gx__conns_free(t);
}

/* The reaper shuts down an overdue connection's socket, and leaves one
 * being served alone. */
static void test_reaper_cuts_overdue(void **state) {
    (void)state;
    int late[2], busy[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, late), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, busy), 0);
    gx__conns *t;
    assert_int_equal(gx__conns_new(0, 20, &t), 0); /* 20 ms */
    gx__conn *cl = gx__conn_open(t, NULL, late[0]);
    gx__conn *cb = gx__conn_open(t, NULL, busy[0]);
    gx__conn_headers(t, cb);
    gx__conn_dispatched(t, cb);
    /* the peer sees the end of the stream once the reaper acted */
    struct pollfd p = {.fd = late[1], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    char ch;
    assert_int_equal(recv(late[1], &ch, 1, 0), 0);
    assert_true(gx__conn_late(t, cl));
    assert_false(gx__conn_late(t, cb)); /* being served: no deadline */
    p.fd = busy[1];
    assert_int_equal(poll(&p, 1, 0), 0);
    gx__conn_close(t, cl);
    gx__conn_close(t, cb);
    gx__conns_free(t);
    close(late[0]);
    close(late[1]);
    close(busy[0]);
    close(busy[1]);
}

/* Without a request timeout, an excess connection that sends nothing is
 * cut all the same; the ones within the limit are left alone. */
static void test_reaper_cuts_silent_excess(void **state) {
    (void)state;
    int ok[2], ex[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ok), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ex), 0);
    gx__conns *t;
    assert_int_equal(gx__conns_new(1, 0, &t), 0);
    struct sockaddr_storage a = v4("10.1.1.1");
    gx__conn *c1 = gx__conn_open(t, SA(a), ok[0]);
    gx__conn *c2 = gx__conn_open(t, SA(a), ex[0]);
    assert_true(gx__conn_excess(t, c2, NULL));
    struct pollfd p = {.fd = ex[1], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    char ch;
    assert_int_equal(recv(ex[1], &ch, 1, 0), 0);
    p.fd = ok[1];
    assert_int_equal(poll(&p, 1, 0), 0); /* within the limit: untouched */
    gx__conn_close(t, c1);
    gx__conn_close(t, c2);
    gx__conns_free(t);
    int fds[] = {ok[0], ok[1], ex[0], ex[1]};
    for (int i = 0; i < 4; i++) close(fds[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_address_counting),
        cmocka_unit_test(test_ipv6_and_mapped),
        cmocka_unit_test(test_no_limit),
        cmocka_unit_test(test_reaper_cuts_overdue),
        cmocka_unit_test(test_reaper_cuts_silent_excess),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
