"""The realtime channel: browser and app sessions through Azure Web PubSub."""
