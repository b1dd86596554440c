// Drives the local Web PubSub with Microsoft's JavaScript client (@azure/web-pubsub-client), as a
// browser or React Native app would: one JSON line on stdout per thing it sees; commands on stdin.
import { createInterface } from "node:readline";
import { WebPubSubClient } from "@azure/web-pubsub-client";

const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const client = new WebPubSubClient(process.argv[2], { autoReconnect: false });
client.on("connected", (e) => say({ kind: "connected", connectionId: e.connectionId, userId: e.userId }));
client.on("server-message", (e) => say({ kind: "server", data: e.message.data }));
client.on("group-message", (e) => say({ kind: "group", group: e.message.group, data: e.message.data }));

try {
  await client.start();
} catch (error) {
  say({ kind: "refused", error: String(error) });
  process.exit(0);
}
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  try {
    if (command.do === "join") await client.joinGroup(command.group);
    if (command.do === "event") await client.sendEvent(command.event, command.data, "json");
    if (command.do === "stop") break;
    say({ kind: "done", do: command.do });
  } catch (error) {
    say({ kind: "failed", do: command.do, error: error.errorDetail?.name ?? String(error) });
  }
}
client.stop();
process.exit(0);
