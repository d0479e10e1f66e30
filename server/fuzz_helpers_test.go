package server

import (
	"encoding/base64"
	"net/url"
)

var (
	fzURLParse = url.Parse
	fzB64      = base64.RawURLEncoding
)
