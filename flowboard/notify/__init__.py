"""Telling people: email over SMTP and chat messages over incoming webhooks. Shared by the nodes that send them (Send
email, Post to chat) and the Approval node's notices; node modules reach it through `flowboard.sdk`, never by
importing one another."""
