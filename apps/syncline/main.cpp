// Placeholder until the server lands with the websocket-server issue.
#include <cstdio>

int main() {
    std::puts("syncline: the server is not built yet (it arrives with the websocket server issue)");
    return 0;
}
