package apidocs

import "embed"

//go:embed assets/init.js assets/docs.css
var ownAssets embed.FS
