package main

import (
	"errors"
	"fmt"
)

// Layout is how many messages go to which room: Big rooms of BigMessages
// each, and the rest of Messages spread evenly over the other rooms (the
// first ones get one more when it does not divide).
type Layout struct {
	Rooms       int `json:"rooms"`
	Messages    int `json:"messages"`
	BigRooms    int `json:"big_rooms"`
	BigMessages int `json:"big_messages"`
}

// Validate reports why a layout cannot be seeded, or nil.
func (l Layout) Validate() error {
	var errs []error
	if l.Rooms < 1 {
		errs = append(errs, fmt.Errorf("rooms must be at least 1, got %d", l.Rooms))
	}
	if l.Messages < 0 || l.BigRooms < 0 || l.BigMessages < 0 {
		errs = append(errs, errors.New("messages, big rooms and big messages must not be negative"))
	}
	if l.BigRooms > l.Rooms {
		errs = append(errs, fmt.Errorf("%d big rooms but only %d rooms", l.BigRooms, l.Rooms))
	}
	if big := int64(l.BigRooms) * int64(l.BigMessages); big > int64(l.Messages) {
		errs = append(errs, fmt.Errorf("big rooms hold %d messages, more than the %d in all", big, l.Messages))
	} else if l.BigRooms == l.Rooms && big != int64(l.Messages) {
		errs = append(errs, fmt.Errorf("every room is big (%d messages) but %d messages were asked for", big, l.Messages))
	}
	return errors.Join(errs...)
}

// Counts returns the number of messages of each room: rooms 0..BigRooms-1
// are the big ones.
func (l Layout) Counts() []int {
	counts := make([]int, l.Rooms)
	for i := range l.BigRooms {
		counts[i] = l.BigMessages
	}
	small := l.Rooms - l.BigRooms
	if small == 0 {
		return counts
	}
	rest := l.Messages - l.BigRooms*l.BigMessages
	each, extra := rest/small, rest%small
	for i := range small {
		counts[l.BigRooms+i] = each
		if i < extra {
			counts[l.BigRooms+i]++
		}
	}
	return counts
}

// Job is one request's worth of posts: messages [From, From+N) of a room.
type Job struct {
	Room int
	From int
	N    int
}

// Jobs cuts each room's messages into requests of at most batch posts, in
// order: Jobs(...)[r] are room r's requests, to be sent one after another.
// Rooms without messages have none.
func Jobs(counts []int, batch int) [][]Job {
	if batch < 1 {
		batch = 1
	}
	jobs := make([][]Job, len(counts))
	for room, c := range counts {
		for from := 0; from < c; from += batch {
			jobs[room] = append(jobs[room], Job{Room: room, From: from, N: min(batch, c-from)})
		}
	}
	return jobs
}
