#!/usr/bin/env python3
"""Raw MQTT over a plain socket, for what paho will not send or does not report.

paho refuses to send a second CONNECT or a filter that breaks the wildcard rules, and paho 2.1
reads the reason code of a server's DISCONNECT only when properties follow it
(eclipse-paho/paho.mqtt.python#860). Each subcommand connects with a clean session/start,
prints {"connack": PACKET} once the CONNACK has come, then does its one thing and reads until
the broker closes (at most WAIT_SECS), and prints {"after": [PACKET, ...], "closed": bool}.
A PACKET is {"type": number, "body": hex}. Exits 1 with a message when no CONNACK comes.

  second-connect   sends a second CONNECT on the same connection
  subscribe F      sends a SUBSCRIBE of filter F at QoS 0
  listen           sends nothing more (to see how the broker ends the connection)
"""

import argparse
import json
import socket
import sys

WAIT_SECS = 10.0


def encode_length(length):
    """An MQTT variable byte integer."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def string(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def packet(first_byte, body):
    return bytes([first_byte]) + encode_length(len(body)) + body


def connect_packet(client_id, v5):
    """A CONNECT with a clean session/start, keep-alive 60 s, and no properties."""
    body = string("MQTT") + bytes([5 if v5 else 4, 0x02]) + (60).to_bytes(2, "big")
    if v5:
        body += b"\x00"
    return packet(0x10, body + string(client_id))


def subscribe_packet(topic_filter, v5):
    body = (1).to_bytes(2, "big") + (b"\x00" if v5 else b"")
    return packet(0x82, body + string(topic_filter) + b"\x00")


class Reader:
    """Reads whole MQTT packets from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def fill(self, wanted):
        while len(self.buffer) < wanted and not self.closed:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
        return len(self.buffer) >= wanted

    def packet(self):
        """The next packet, or None once the broker has closed."""
        length, shift, at = 0, 0, 1
        while True:
            if not self.fill(at + 1):
                return None
            byte = self.buffer[at]
            length |= (byte & 0x7F) << shift
            shift += 7
            at += 1
            if not byte & 0x80:
                break
        if not self.fill(at + length):
            return None
        found = {"type": self.buffer[0] >> 4, "body": self.buffer[at:at + length].hex()}
        self.buffer = self.buffer[at + length:]
        return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", choices=["311", "5"], required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("action", choices=["second-connect", "subscribe", "listen"])
    parser.add_argument("filter", nargs="?")
    options = parser.parse_args()
    v5 = options.version == "5"

    sock = socket.create_connection(("127.0.0.1", options.port), timeout=WAIT_SECS)
    reader = Reader(sock)
    sock.sendall(connect_packet(options.client_id, v5))
    connack = reader.packet()
    if connack is None or connack["type"] != 2:
        sys.exit(f"raw_mqtt: expected a CONNACK, got {connack}")
    print(json.dumps({"connack": connack}), flush=True)

    if options.action == "second-connect":
        sock.sendall(connect_packet(options.client_id, v5))
    elif options.action == "subscribe":
        sock.sendall(subscribe_packet(options.filter, v5))
    after = []
    try:
        while (found := reader.packet()) is not None:
            after.append(found)
    except socket.timeout:
        pass
    print(json.dumps({"after": after, "closed": reader.closed}), flush=True)


if __name__ == "__main__":
    main()
