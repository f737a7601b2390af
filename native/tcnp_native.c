// tcnp's native primitives, the few syscalls Node does not expose:
//   setns(fd, nstype)          switch the calling (main) thread's namespace
//   flock(fd, op)              advisory lock; returns 0, or the errno (EWOULDBLOCK with LOCK_NB)
//   sendGarp(ifindex, mac, ip) broadcast one gratuitous ARP request from an interface of the
//                              calling thread's current netns (AF_PACKET). Closing a packet
//                              socket waits for an RCU grace period (~15 ms), so the send and the
//                              close happen in a detached grandchild that holds none of our fds.
// Every function runs synchronously on the calling thread, which is what makes setns safe to use
// from Node: the caller switches, does synchronous work, and switches back before yielding.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int e) {
  const char *n = strerrorname_np(e);
  return n != NULL ? n : "EIO";
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s failed: %s", what, strerror(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value Setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, nstype = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !int_arg(env, argv[0], &fd) || !int_arg(env, argv[1], &nstype)) {
    napi_throw_type_error(env, NULL, "setns(fd: number, nstype: number)");
    return NULL;
  }
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

static napi_value Flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd = -1, op = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !int_arg(env, argv[0], &fd) || !int_arg(env, argv[1], &op)) {
    napi_throw_type_error(env, NULL, "flock(fd: number, op: number)");
    return NULL;
  }
  int rc = flock(fd, op);
  napi_create_int32(env, rc == 0 ? 0 : errno, &out);
  return out;
}

static int get_bytes(napi_env env, napi_value v, unsigned char *dst, size_t want) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != want) return 0;
  memcpy(dst, data, want);
  return 1;
}

static napi_value SendGarp(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t ifindex = 0;
  unsigned char mac[6], ip[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !int_arg(env, argv[0], &ifindex) || !get_bytes(env, argv[1], mac, 6) ||
      !get_bytes(env, argv[2], ip, 4)) {
    napi_throw_type_error(env, NULL, "sendGarp(ifindex: number, mac: Buffer(6), ip: Buffer(4))");
    return NULL;
  }
  // ARP request, sender = target = our address: the form Linux's arp_notify and arping -U send.
  unsigned char pkt[28];
  struct arphdr *h = (struct arphdr *)pkt;
  h->ar_hrd = htons(ARPHRD_ETHER);
  h->ar_pro = htons(ETH_P_IP);
  h->ar_hln = 6;
  h->ar_pln = 4;
  h->ar_op = htons(ARPOP_REQUEST);
  memcpy(pkt + 8, mac, 6);
  memcpy(pkt + 14, ip, 4);
  memset(pkt + 18, 0, 6);
  memcpy(pkt + 24, ip, 4);
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex;
  to.sll_halen = 6;
  memset(to.sll_addr, 0xff, 6);
  // Everything the grandchild does is async-signal-safe (fork in a threaded process).
  pid_t child = fork();
  if (child < 0) return throw_errno(env, "fork", errno);
  if (child == 0) {
    if (fork() != 0) _exit(0);
    // The grandchild: let go of stdio at once so the runtime reading our stdout is not held up.
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); }
    int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to);
    _exit(0);
  }
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn, c;
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, Setns, NULL, &fn);
  napi_set_named_property(env, exports, "setns", fn);
  napi_create_function(env, "flock", NAPI_AUTO_LENGTH, Flock, NULL, &fn);
  napi_set_named_property(env, exports, "flock", fn);
  napi_create_function(env, "sendGarp", NAPI_AUTO_LENGTH, SendGarp, NULL, &fn);
  napi_set_named_property(env, exports, "sendGarp", fn);
  napi_create_int32(env, CLONE_NEWNET, &c);
  napi_set_named_property(env, exports, "CLONE_NEWNET", c);
  napi_create_int32(env, LOCK_EX, &c);
  napi_set_named_property(env, exports, "LOCK_EX", c);
  napi_create_int32(env, LOCK_NB, &c);
  napi_set_named_property(env, exports, "LOCK_NB", c);
  napi_create_int32(env, LOCK_UN, &c);
  napi_set_named_property(env, exports, "LOCK_UN", c);
  napi_create_int32(env, EWOULDBLOCK, &c);
  napi_set_named_property(env, exports, "EWOULDBLOCK", c);
  return exports;
}
