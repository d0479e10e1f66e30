package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// natsRelay is the server's Relay over the event log's NATS connection:
// graphql-sse single-connection-mode requests reach the replica holding
// their stream through any replica.
type natsRelay struct{ r *pubsub.Relay }

var _ server.Relay = natsRelay{}

func (n natsRelay) Listen(token string, serve server.RelayHandler) (func(), error) {
	return n.r.Listen(token, func(ctx context.Context, h http.Header, body []byte) (http.Header, []byte) {
		answer := serve(ctx, server.RelayMessage{Header: h, Body: body})
		return answer.Header, answer.Body
	})
}

func (n natsRelay) Send(ctx context.Context, token string, msg server.RelayMessage) (server.RelayMessage, error) {
	h, body, err := n.r.Send(ctx, token, msg.Header, msg.Body)
	switch {
	case errors.Is(err, pubsub.ErrNoListener):
		return server.RelayMessage{}, errors.Join(err, server.ErrNoStreamHolder)
	case errors.Is(err, nats.ErrMaxPayload):
		return server.RelayMessage{}, errors.Join(err, server.ErrRelayMessageTooLarge)
	case errors.Is(err, pubsub.ErrAnswerTooLarge):
		return server.RelayMessage{}, errors.Join(err, server.ErrRelayAnswerTooLarge)
	}
	return server.RelayMessage{Header: h, Body: body}, err
}

// disconnectTopic is the notice topic of disconnectUser: its data is the
// user id, and every replica ends that user's sessions.
const disconnectTopic = "disconnect-user"

// noticeDisconnector carries out disconnectUser on every replica: a notice
// over NATS, which each replica's listener (this one's too) hands to its
// server.Server.DisconnectUser.
type noticeDisconnector struct{ log *pubsub.Log }

func (d noticeDisconnector) DisconnectUser(ctx context.Context, userID string) error {
	return d.log.PublishNotice(ctx, disconnectTopic, []byte(userID))
}
