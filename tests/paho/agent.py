#!/usr/bin/env python3
"""A paho-mqtt agent that tests/interop_paho.rs drives one line at a time.

Each line on stdin is a command, `VERB NAME key=value ...` (values hold no spaces; a key may
repeat). The agent runs it with paho-mqtt 2.x clients (CallbackAPIVersion.VERSION2, one network
thread each, no automatic reconnection) and prints one JSON object per command on stdout:
{"ok": true, ...} or {"ok": false, "error": "..."}. Every wait has a timeout, and the agent
exits at the end of its input or after WATCHDOG_SECS, so a test that dies leaves nothing behind.

  connect NAME id=ID v=5|311 [clean=0|1] [expiry=SECS] [keepalive=SECS]
               [will_topic=T will_payload=P will_qos=Q will_retain=0|1]
      -> reason, session_present, props (CONNACK properties), local_port
  subscribe NAME filter=F [filter=F ...] qos=Q [subid=N] [rap=1] [nl=1] [rh=N]
      -> reasons (one SUBACK code per filter)
  publish NAME topic=T payload=P qos=Q [retain=1] [response_topic=T] [correlation=C]
               [user=K:V ...]          waits for PUBACK/PUBCOMP (QoS 0: for the write)
  expect NAME count=N      waits for N messages; returns (and forgets) the oldest N
  collect NAME wait=SECS   waits SECS; returns (and forgets) whatever arrived
  disconnect NAME [reason=N]   sends DISCONNECT (with a reason code in 5.0)
  drop NAME                closes the socket without DISCONNECT, as a network failure would
  stall NAME               stops the network thread but leaves the socket open (no PINGREQ)
  wait_closed NAME         after stall: reads until the broker closes; returns the bytes
  wait_disconnect NAME     waits until the broker ends the connection; returns why
  quit

A message is {topic, payload, qos, retain, dup, props}; props holds the MQTT 5.0 properties by
paho's names (ResponseTopic, CorrelationData as text, UserProperty as [key, value] pairs,
SubscriptionIdentifier as a list).
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT_SECS = 10.0
WATCHDOG_SECS = 120.0


class Failure(Exception):
    """A command that could not do what it was asked; reported as {"ok": false}."""


def props_json(props):
    """The MQTT 5.0 properties of a packet as a dict (empty for 3.1.1)."""
    if props is None:
        return {}
    data = props.json()
    if isinstance(getattr(props, "CorrelationData", None), bytes):
        data["CorrelationData"] = props.CorrelationData.decode("utf-8", "backslashreplace")
    if "UserProperty" in data:
        data["UserProperty"] = [list(pair) for pair in data["UserProperty"]]
    return data


class Peer:
    """One paho client and what its callbacks have seen."""

    def __init__(self, client, version):
        self.client = client
        self.version = version
        self.cond = threading.Condition()
        self.connack = None
        self.disconnected = None
        self.inbox = []
        self.subacks = {}
        self.completed = {}
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribe
        client.on_publish = self.on_publish

    def record(self, update):
        with self.cond:
            update()
            self.cond.notify_all()

    def on_connect(self, _client, _userdata, flags, reason_code, properties):
        self.record(lambda: setattr(self, "connack", {
            "reason": reason_code.value,
            "session_present": bool(flags.session_present),
            "props": props_json(properties),
        }))

    def on_disconnect(self, _client, _userdata, flags, reason_code, properties):
        self.record(lambda: setattr(self, "disconnected", {
            "reason": reason_code.value,
            "from_server": bool(flags.is_disconnect_packet_from_server),
            "props": props_json(properties),
        }))

    def on_message(self, _client, _userdata, message):
        self.record(lambda: self.inbox.append({
            "topic": message.topic,
            "payload": message.payload.decode("utf-8", "backslashreplace"),
            "qos": message.qos,
            "retain": bool(message.retain),
            "dup": bool(message.dup),
            "props": props_json(getattr(message, "properties", None)),
        }))

    def on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        self.record(lambda: self.subacks.__setitem__(mid, [code.value for code in reason_codes]))

    def on_publish(self, _client, _userdata, mid, reason_code, _properties):
        self.record(lambda: self.completed.__setitem__(mid, reason_code.value))

    def wait(self, ready, what, timeout=WAIT_SECS):
        """Waits until ready() holds; raises Failure naming `what` after `timeout`."""
        with self.cond:
            if not self.cond.wait_for(ready, timeout):
                raise Failure(f"timed out after {timeout} s waiting for {what}")

    def stop_network(self):
        """Ends the network thread without touching the socket."""
        thread = self.client._thread
        if thread is None:
            return
        self.client._thread_terminate = True
        try:
            # Wakes the thread's select() at once rather than at its 1 s timeout.
            self.client._sockpairW.send(b"0")
        except (OSError, AttributeError):
            pass
        thread.join(WAIT_SECS)
        if thread.is_alive():
            raise Failure("the network thread did not stop (messages still in flight?)")


class Agent:
    """The named peers of one test and the commands run on them."""

    def __init__(self, port):
        self.port = port
        self.peers = {}

    def peer(self, name):
        if name not in self.peers:
            raise Failure(f"no client named {name}")
        return self.peers[name]

    def run(self, line):
        words = line.split()
        verb, name = words[0], words[1] if len(words) > 1 else ""
        args = []
        for word in words[2:]:
            key, sep, value = word.partition("=")
            if not sep:
                raise Failure(f"argument {word!r} is not key=value")
            args.append((key, value))
        handler = getattr(self, "cmd_" + verb, None)
        if handler is None:
            raise Failure(f"unknown command {verb!r}")
        return handler(name, Args(args))

    def cmd_connect(self, name, args):
        if name in self.peers and self.peers[name].client._thread is not None:
            raise Failure(f"{name} is still connected")
        v5 = args.get("v") == "5"
        clean = args.int("clean", 1) == 1
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=args.get("id", ""),
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else clean,
            reconnect_on_failure=False,
        )
        peer = Peer(client, args.get("v"))
        if args.has("will_topic"):
            client.will_set(
                args.get("will_topic"),
                args.get("will_payload", ""),
                qos=args.int("will_qos", 0),
                retain=args.int("will_retain", 0) == 1,
            )
        properties = None
        if v5 and args.has("expiry"):
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = args.int("expiry")
        extra = {"clean_start": clean, "properties": properties} if v5 else {}
        client.connect("127.0.0.1", self.port, keepalive=args.int("keepalive", 60), **extra)
        local_port = client.socket().getsockname()[1]
        self.peers[name] = peer
        client.loop_start()
        peer.wait(lambda: peer.connack is not None or peer.disconnected is not None, "CONNACK")
        if peer.connack is None:
            raise Failure(f"closed before CONNACK: {peer.disconnected}")
        return {"local_port": local_port, **peer.connack}

    def cmd_subscribe(self, name, args):
        peer = self.peer(name)
        qos = args.int("qos", 0)
        filters = args.all("filter")
        if peer.version == "5":
            options = SubscribeOptions(
                qos=qos,
                noLocal=args.int("nl", 0) == 1,
                retainAsPublished=args.int("rap", 0) == 1,
                retainHandling=args.int("rh", 0),
            )
            properties = None
            if args.has("subid"):
                properties = Properties(PacketTypes.SUBSCRIBE)
                properties.SubscriptionIdentifier = args.int("subid")
            result, mid = peer.client.subscribe(
                [(topic, options) for topic in filters], properties=properties
            )
        else:
            result, mid = peer.client.subscribe([(topic, qos) for topic in filters])
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise Failure(f"subscribe refused by paho: {result}")
        peer.wait(lambda: mid in peer.subacks or peer.disconnected is not None, "SUBACK")
        if mid not in peer.subacks:
            return {"ok": False, "error": "closed before SUBACK", "disconnected": peer.disconnected}
        return {"reasons": peer.subacks.pop(mid)}

    def cmd_publish(self, name, args):
        peer = self.peer(name)
        properties = None
        if peer.version == "5" and (args.has("response_topic") or args.has("correlation")
                                    or args.has("user")):
            properties = Properties(PacketTypes.PUBLISH)
            if args.has("response_topic"):
                properties.ResponseTopic = args.get("response_topic")
            if args.has("correlation"):
                properties.CorrelationData = args.get("correlation").encode()
            for pair in args.all("user"):
                key, _, value = pair.partition(":")
                properties.UserProperty = (key, value)
        info = peer.client.publish(
            args.get("topic"),
            args.get("payload", "").encode(),
            qos=args.int("qos", 0),
            retain=args.int("retain", 0) == 1,
            properties=properties,
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Failure(f"publish refused by paho: {info.rc}")
        peer.wait(lambda: info.mid in peer.completed or peer.disconnected is not None,
                  "the publish to complete")
        if info.mid not in peer.completed:
            return {"ok": False, "error": "closed before the publish completed",
                    "disconnected": peer.disconnected}
        return {"reason": peer.completed.pop(info.mid)}

    def cmd_expect(self, name, args):
        peer = self.peer(name)
        count = args.int("count")
        with peer.cond:
            peer.cond.wait_for(lambda: len(peer.inbox) >= count, WAIT_SECS)
            messages = peer.inbox[:count]
            del peer.inbox[:count]
        if len(messages) < count:
            return {"ok": False, "error": f"got {len(messages)} of {count} messages "
                    f"in {WAIT_SECS} s", "messages": messages}
        return {"messages": messages}

    def cmd_collect(self, name, args):
        peer = self.peer(name)
        deadline = time.monotonic() + float(args.get("wait"))
        with peer.cond:
            # Messages arriving wake the wait; only the deadline ends it.
            while (left := deadline - time.monotonic()) > 0:
                peer.cond.wait(left)
            messages = list(peer.inbox)
            peer.inbox.clear()
        return {"messages": messages}

    def cmd_disconnect(self, name, args):
        peer = self.peer(name)
        reason = None
        if args.has("reason"):
            reason = ReasonCode(PacketTypes.DISCONNECT, identifier=args.int("reason"))
        peer.client.disconnect(reasoncode=reason)
        peer.wait(lambda: peer.disconnected is not None, "the disconnection")
        peer.stop_network()
        return {}

    def cmd_drop(self, name, _args):
        peer = self.peer(name)
        peer.stop_network()
        peer.client._sock.close()
        return {}

    def cmd_stall(self, name, _args):
        self.peer(name).stop_network()
        return {}

    def cmd_wait_closed(self, name, _args):
        sock = self.peer(name).client._sock
        sock.settimeout(WAIT_SECS)
        received = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            return {"ok": False, "error": f"still open after {WAIT_SECS} s",
                    "bytes": received.hex()}
        return {"bytes": received.hex()}

    def cmd_wait_disconnect(self, name, _args):
        peer = self.peer(name)
        peer.wait(lambda: peer.disconnected is not None, "the broker to disconnect")
        return dict(peer.disconnected)

    def cmd_quit(self, _name, _args):
        print(json.dumps({"ok": True}), flush=True)
        os._exit(0)


class Args:
    """The key=value arguments of a command, in order; a key may repeat."""

    def __init__(self, pairs):
        self.pairs = pairs

    def has(self, key):
        return any(k == key for k, _ in self.pairs)

    def all(self, key):
        return [v for k, v in self.pairs if k == key]

    def get(self, key, default=None):
        values = self.all(key)
        if values:
            return values[-1]
        if default is None:
            raise Failure(f"missing argument {key}=")
        return default

    def int(self, key, default=None):
        return int(self.get(key, None if default is None else str(default)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    watchdog = threading.Timer(WATCHDOG_SECS, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    agent = Agent(options.port)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = {"ok": True, **agent.run(line)}
        except (Failure, OSError, ValueError) as error:
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
