package deps
import (
 _ "github.com/valyala/bytebufferpool"
 _ "golang.org/x/sys/unix"
 _ "github.com/HdrHistogram/hdrhistogram-go"
 _ "github.com/hashicorp/yamux"
 _ "github.com/xtaci/smux"
 _ "go.uber.org/goleak"
 _ "gopkg.in/yaml.v3"
)
