package bench

import (
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/dockertest"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }
